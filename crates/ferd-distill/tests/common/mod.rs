//! Helpers shared by the training tests.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;

/// Every float parameter of a model (its inference-mode copy), flattened in visiting order: two
/// models with equal vectors have the same weights bit for bit.
pub fn parameters<M: Module>(model: &M) -> Vec<f32> {
    struct Flat(Vec<f32>);
    impl ModuleVisitor for Flat {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.extend(param.val().try_to_vec_as::<f32>().unwrap());
        }
    }
    let mut flat = Flat(Vec::new());
    model.valid().visit(&mut flat);
    flat.0
}
