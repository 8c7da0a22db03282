//! The convolution against its definition, and the geometry's range arithmetic.

use super::gemm::im2col;
use super::*;
/// The input pixel `(row, column)` that kernel tap `(i, j)` reads for output `(oy, ox)` by
/// the definition ([`ConvGeometry::source`] along each dimension); `None` in the padding.
fn reads(
    g: &ConvGeometry,
    (oy, ox): (usize, usize),
    (i, j): (usize, usize),
) -> Option<(usize, usize)> {
    let along = |d: usize, o: usize, k: usize, size: usize| {
        ConvGeometry::source(o, k, g.stride[d], g.dilation[d], g.padding[d], size)
    };
    along(0, oy, i, g.height).zip(along(1, ox, j, g.width))
}

/// The convolution by its definition, summed in f64: the reference of these unit tests.
fn naive(g: &ConvGeometry, x: &[f32], w: &[f32]) -> Vec<f64> {
    let mut out = vec![0.0; g.output_len()];
    let (gi, go) = (g.group_in(), g.group_out());
    for b in 0..g.batch {
        for o in 0..g.out_channels {
            let group = o / go;
            for oy in 0..g.out_height {
                for ox in 0..g.out_width {
                    let mut sum = 0.0f64;
                    for c in 0..gi {
                        for i in 0..g.kernel[0] {
                            for j in 0..g.kernel[1] {
                                if let Some((iy, ix)) = reads(g, (oy, ox), (i, j)) {
                                    let xv = x[((b * g.in_channels + group * gi + c) * g.height
                                        + iy)
                                        * g.width
                                        + ix];
                                    let wv = w[((o * gi + c) * g.kernel[0] + i) * g.kernel[1] + j];
                                    sum += xv as f64 * wv as f64;
                                }
                            }
                        }
                    }
                    out[((b * g.out_channels + o) * g.out_height + oy) * g.out_width + ox] = sum;
                }
            }
        }
    }
    out
}

fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

/// Forward against the definition; gradients against the adjoint identities
/// `<dY, conv(X, W)> = <dX, X> = <dW, W>` (the convolution is bilinear).
#[test]
fn forward_and_gradients_match_the_definition() {
    let cases = [
        // x, w, stride, padding, dilation, groups
        (
            [2, 3, 7, 6],
            [4, 3, 3, 3],
            [1, 1],
            [(1, 1), (1, 1)],
            [1, 1],
            1,
        ),
        (
            [3, 4, 9, 8],
            [6, 2, 3, 2],
            [2, 1],
            [(2, 0), (1, 2)],
            [1, 2],
            2,
        ),
        (
            [2, 5, 6, 6],
            [5, 1, 3, 3],
            [2, 2],
            [(1, 1), (1, 1)],
            [1, 1],
            5,
        ),
        (
            [2, 4, 5, 5],
            [3, 4, 1, 1],
            [1, 1],
            [(0, 0), (0, 0)],
            [1, 1],
            1,
        ),
        (
            [1, 2, 4, 4],
            [2, 2, 1, 1],
            [2, 2],
            [(0, 0), (0, 0)],
            [1, 1],
            1,
        ),
        // Several GEMMs of several images (`images_per_gemm` 3: chunks of 3, 3, 1).
        (
            [7, 3, 10, 10],
            [4, 3, 3, 3],
            [1, 1],
            [(1, 1), (1, 1)],
            [1, 1],
            1,
        ),
        // Grouped pointwise, chunks of 4 and 1 (in place for the single image).
        (
            [5, 4, 9, 9],
            [6, 2, 1, 1],
            [1, 1],
            [(0, 0), (0, 0)],
            [1, 1],
            2,
        ),
        // Depthwise "same" layers, whose taps run over whole planes (`TapRun`): 3x3 with
        // padding 1; 5x3 dilated along the width, padded asymmetrically, 37 wide (runs
        // longer than the 16 lanes, with a tail); a 3x3 plane.
        (
            [2, 3, 7, 6],
            [3, 1, 3, 3],
            [1, 1],
            [(1, 1), (1, 1)],
            [1, 1],
            3,
        ),
        (
            [2, 4, 9, 37],
            [4, 1, 5, 3],
            [1, 1],
            [(2, 0), (1, 3)],
            [1, 2],
            4,
        ),
        (
            [1, 2, 3, 3],
            [2, 1, 3, 3],
            [1, 1],
            [(1, 1), (1, 1)],
            [1, 1],
            2,
        ),
        // Weight-gradient shares of 3 images, each one GEMM.
        (
            [40, 1, 10, 10],
            [2, 1, 3, 3],
            [1, 1],
            [(1, 1), (1, 1)],
            [1, 1],
            1,
        ),
    ];
    for (case, (xs, ws, stride, padding, dilation, groups)) in cases.into_iter().enumerate() {
        let g = ConvGeometry::new(xs, ws, stride, padding, dilation, groups).unwrap();
        let x = values(xs.iter().product(), 1 + case as u64);
        let w = values(ws.iter().product(), 100 + case as u64);
        let dy = values(g.output_len(), 200 + case as u64);
        let y = forward(&g, &x, &w);
        for (a, b) in y.iter().zip(naive(&g, &x, &w)) {
            assert!(
                (*a as f64 - b).abs() < 1e-5,
                "case {case}: forward {a} vs {b}"
            );
        }
        let dot = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .map(|(a, b)| *a as f64 * *b as f64)
                .sum::<f64>()
        };
        let reference = naive(&g, &x, &w)
            .iter()
            .zip(&dy)
            .map(|(a, b)| a * *b as f64)
            .sum::<f64>();
        let dx = input_grad(&g, &w, &dy);
        let dw = weight_grad(&g, &x, &dy);
        assert!(
            (dot(&dx, &x) - reference).abs() < 1e-4,
            "case {case}: input gradient"
        );
        assert!(
            (dot(&dw, &w) - reference).abs() < 1e-4,
            "case {case}: weight gradient"
        );
    }
}

/// The range arithmetic agrees with the per-element definition everywhere.
#[test]
fn inside_is_where_source_is_some() {
    for count in 0..6 {
        for k in 0..4 {
            for stride in 1..4 {
                for dilation in 1..3 {
                    for padding in 0..4 {
                        for size in 1..7 {
                            let (lo, hi) =
                                ConvGeometry::inside(count, k, stride, dilation, padding, size);
                            for o in 0..count {
                                let some =
                                    ConvGeometry::source(o, k, stride, dilation, padding, size)
                                        .is_some();
                                assert_eq!(
                                    some,
                                    (lo..hi).contains(&o),
                                    "{count} {k} {stride} {dilation} {padding} {size} {o}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Each tap's rectangle and input coordinates agree with the per-element definition.
#[test]
fn taps_read_where_the_definition_says() {
    let geometries = [
        ([1, 1, 7, 6], [1, 1, 3, 3], [1, 1], [(1, 1), (1, 1)], [1, 1]),
        ([1, 1, 9, 8], [1, 1, 3, 2], [2, 1], [(2, 0), (1, 2)], [1, 2]),
        (
            [1, 1, 5, 11],
            [1, 1, 4, 3],
            [3, 2],
            [(0, 3), (3, 0)],
            [2, 3],
        ),
    ];
    for (xs, ws, stride, padding, dilation) in geometries {
        let g = ConvGeometry::new(xs, ws, stride, padding, dilation, 1).unwrap();
        for i in 0..g.kernel[0] {
            for j in 0..g.kernel[1] {
                let tap = g.tap(i, j);
                for oy in 0..g.out_height {
                    for ox in 0..g.out_width {
                        let inside = tap.rows.contains(&oy) && tap.cols.contains(&ox);
                        let expected = reads(&g, (oy, ox), (i, j));
                        let found = inside.then(|| {
                            (
                                tap.input_row(oy),
                                tap.first_col + (ox - tap.cols.start) * stride[1],
                            )
                        });
                        assert_eq!(
                            found, expected,
                            "{xs:?} {ws:?} tap ({i}, {j}) output ({oy}, {ox})"
                        );
                    }
                }
            }
        }
    }
}

/// Every entry of an image's im2col block is the input pixel the definition names, or zero
/// in the padding; also where one copy moves whole rows (stride 1, `W_out = W`) and a column
/// tap reads nothing (a kernel wider than image plus padding on one side).
#[test]
fn im2col_puts_each_pixel_where_the_definition_says() {
    let geometries = [
        // "same" 3x3 and 5x5 (one copy per tap), with dilation and uneven padding.
        ([1, 2, 6, 7], [1, 2, 3, 3], [1, 1], [(1, 1), (1, 1)], [1, 1]),
        ([1, 1, 5, 4], [1, 1, 5, 5], [1, 1], [(2, 2), (2, 2)], [1, 1]),
        ([1, 2, 7, 6], [1, 2, 3, 3], [1, 1], [(0, 2), (4, 0)], [1, 2]),
        ([1, 1, 3, 2], [1, 1, 3, 5], [1, 1], [(1, 1), (4, 0)], [1, 1]),
        // Row by row: stride 2, and a narrower output.
        ([1, 2, 7, 6], [1, 2, 3, 3], [2, 1], [(1, 1), (1, 1)], [1, 1]),
        ([1, 1, 6, 6], [1, 1, 3, 3], [1, 1], [(0, 0), (0, 0)], [1, 1]),
    ];
    for (xs, ws, stride, padding, dilation) in geometries {
        let g = ConvGeometry::new(xs, ws, stride, padding, dilation, 1).unwrap();
        let x = values(xs.iter().product(), 7);
        let ld = g.col_cols() + 3; // a wider leading dimension, as for several images
        let mut col = vec![f32::NAN; g.col_rows() * ld];
        im2col(&g, &x, &mut col, ld);
        for c in 0..g.in_channels {
            for i in 0..g.kernel[0] {
                for j in 0..g.kernel[1] {
                    let r = (c * g.kernel[0] + i) * g.kernel[1] + j;
                    for oy in 0..g.out_height {
                        for ox in 0..g.out_width {
                            let expected = reads(&g, (oy, ox), (i, j))
                                .map_or(0.0, |(iy, ix)| x[(c * g.height + iy) * g.width + ix]);
                            let found = col[r * ld + oy * g.out_width + ox];
                            assert_eq!(
                                found.to_bits(),
                                expected.to_bits(),
                                "{xs:?} {ws:?} {padding:?} row {r} output ({oy}, {ox})"
                            );
                        }
                    }
                }
            }
        }
    }
}

/// A layer with no input channels (or, for the input gradient, no output channels) sums
/// nothing: zeros of the right shape, whichever path the layer's shape would otherwise take
/// (here a stride-1 layer of whole-vector rows).
#[test]
fn empty_channel_dimensions_give_zeros() {
    let no_input =
        ConvGeometry::new([2, 0, 4, 16], [8, 0, 3, 3], [1, 1], [(1, 1); 2], [1, 1], 1).unwrap();
    assert_eq!(forward(&no_input, &[], &[]), vec![0.0; 2 * 8 * 4 * 16]);
    assert_eq!(
        weight_grad(&no_input, &[], &values(2 * 8 * 64, 1)),
        Vec::<f32>::new()
    );
    let no_output =
        ConvGeometry::new([2, 8, 4, 16], [0, 8, 3, 3], [1, 1], [(1, 1); 2], [1, 1], 1).unwrap();
    assert_eq!(input_grad(&no_output, &[], &[]), vec![0.0; 2 * 8 * 4 * 16]);
}

#[test]
fn geometry_rejects_what_does_not_fit() {
    assert!(ConvGeometry::new([1, 3, 2, 2], [4, 3, 3, 3], [1, 1], [(0, 0); 2], [1, 1], 1).is_err());
    assert!(ConvGeometry::new([1, 3, 8, 8], [4, 2, 3, 3], [1, 1], [(1, 1); 2], [1, 1], 1).is_err());
    assert!(ConvGeometry::new([1, 4, 8, 8], [4, 2, 3, 3], [0, 1], [(1, 1); 2], [1, 1], 2).is_err());
    let g = ConvGeometry::new([1, 4, 8, 8], [6, 2, 3, 3], [2, 2], [(1, 1); 2], [1, 1], 2).unwrap();
    assert_eq!(g.output_shape(), [1, 6, 4, 4]);
}

/// A forced path computes the layers it takes and leaves the others to im2col; the choice ends
/// with `with_path`, also when calls nest.
#[test]
fn a_forced_path_is_taken_where_it_fits() {
    // ResNet-18's 32x32 stage: output rows of two vectors.
    let rows =
        ConvGeometry::new([2, 8, 32, 32], [8, 8, 3, 3], [1, 1], [(1, 1); 2], [1, 1], 1).unwrap();
    // A 4x4 map at batch 64: one full block of images.
    let images =
        ConvGeometry::new([64, 8, 4, 4], [8, 8, 3, 3], [1, 1], [(1, 1); 2], [1, 1], 1).unwrap();
    let avx512 = ConvPath::DirectRows.available();
    assert_eq!(ConvPath::DirectImages.available(), avx512);
    // Without AVX-512 every layer is im2col's.
    let automatic = |direct: ConvPath| if avx512 { direct } else { ConvPath::Im2col };
    assert_eq!(forward_path(&rows), automatic(ConvPath::DirectRows));
    assert_eq!(forward_path(&images), automatic(ConvPath::DirectImages));
    with_path(ConvPath::Im2col, || {
        assert_eq!(forward_path(&rows), ConvPath::Im2col);
        assert_eq!(weight_grad_path(&images), ConvPath::Im2col);
        with_path(ConvPath::DirectImages, || {
            // Rows of 32 floats at batch 2 fill no block of images: im2col.
            assert_eq!(forward_path(&rows), ConvPath::Im2col);
            assert_eq!(forward_path(&images), automatic(ConvPath::DirectImages));
        });
        assert_eq!(forward_path(&images), ConvPath::Im2col);
    });
    assert_eq!(forward_path(&rows), automatic(ConvPath::DirectRows));
    for path in ConvPath::ALL {
        assert_eq!(path.name().parse::<ConvPath>(), Ok(path));
    }
    assert!(
        "gemm"
            .parse::<ConvPath>()
            .unwrap_err()
            .contains("direct-rows")
    );
}
