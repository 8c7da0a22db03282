//! Writes a model saved by ferd (burnpack) in its PyTorch definition's layout, as SafeTensors:
//! `load_state_dict` reads it (the peers in `tools/peer` load the bundled teacher this way).
//!
//! ```sh
//! cargo run --example export_pytorch -- small-cnn-16 models/fmnist-small-teacher/teacher.bpk teacher.safetensors
//! cargo run --example export_pytorch -- resnet18 weights.bpk resnet18.safetensors 3 10
//! ```
//!
//! The last two arguments are the input channels and the classes (default 1 and 10).

use ferd::core::DeviceSpec;
use ferd::models::{load_weights, save_pytorch, zoo::Architecture};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [arch, weights, out, rest @ ..] = args.as_slice() else {
        return Err(
            "usage: export_pytorch ARCH WEIGHTS.bpk OUT.safetensors [CHANNELS CLASSES]".into(),
        );
    };
    let (channels, classes) = match rest {
        [] => (1, 10),
        [c, k] => (c.parse()?, k.parse()?),
        _ => return Err("give both CHANNELS and CLASSES, or neither".into()),
    };
    let device = DeviceSpec::Flex.device()?;
    let mut model = arch
        .parse::<Architecture>()?
        .build(channels, classes, &device);
    load_weights(&mut model, weights)?;
    save_pytorch(&model, out)?;
    eprintln!("{arch} from {weights} written to {out} (PyTorch layout)");
    Ok(())
}
