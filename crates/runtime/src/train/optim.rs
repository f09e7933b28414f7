//! SGD with momentum and Adam, written here rather than taken from burn so that their
//! state is keyed by parameter path (burn keys it by random parameter ids): a checkpoint
//! then holds the optimizer state under readable names, and a verifier that loads it
//! continues exactly where the executor was. The update rules are PyTorch's.

use std::collections::BTreeMap;

use burn::module::{ModuleMapper, ModuleVisitor, Param};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};

use crate::TaskError;
use crate::train::config::Optimizer;

/// The optimizer's state for each parameter, by path, as flat vectors.
pub struct State<B: Backend> {
    pub rule: Optimizer,
    /// The names of the state vectors each parameter has: `momentum` for SGD, `adam_m` and
    /// `adam_v` for Adam.
    pub slots: &'static [&'static str],
    pub by_path: BTreeMap<String, Vec<Tensor<B, 1>>>,
}

impl<B: Backend> State<B> {
    /// Zero state for every parameter of a model with `shapes`, the state before the first
    /// step (PyTorch's first momentum step, buf = grad, is buf = 0 * momentum + grad).
    pub fn zeros(rule: Optimizer, shapes: &BTreeMap<String, Vec<usize>>, device: &B::Device) -> State<B> {
        let slots = slots(rule);
        let by_path = shapes
            .iter()
            .map(|(path, shape)| {
                let count = shape.iter().product::<usize>();
                (path.clone(), slots.iter().map(|_| Tensor::zeros([count], device)).collect())
            })
            .collect();
        State { rule, slots, by_path }
    }
}

pub fn slots(rule: Optimizer) -> &'static [&'static str] {
    match rule {
        Optimizer::Sgd { momentum, .. } if momentum > 0.0 => &["momentum"],
        Optimizer::Sgd { .. } => &[],
        Optimizer::Adam { .. } => &["adam_m", "adam_v"],
    }
}

/// `base` to the power `exp` by squaring: multiplications only, so the same on every
/// machine (unlike `powi`, which may call a math library).
fn power(base: f64, mut exp: u64) -> f64 {
    let (mut result, mut square) = (1.0, base);
    while exp > 0 {
        if exp & 1 == 1 {
            result *= square;
        }
        square *= square;
        exp >>= 1;
    }
    result
}

/// Applies one optimizer step (the `step`-th, counting from 1) to every parameter with a
/// gradient in `grads`.
pub struct Update<'a, B: AutodiffBackend> {
    pub grads: B::Gradients,
    pub state: &'a mut State<B::InnerBackend>,
    pub step: u64,
    pub path: Vec<String>,
    pub error: Option<TaskError>,
}

impl<B: AutodiffBackend> Update<'_, B> {
    fn apply(
        &mut self,
        param: Tensor<B::InnerBackend, 1>,
        grad: Tensor<B::InnerBackend, 1>,
    ) -> Tensor<B::InnerBackend, 1> {
        let name = self.path.join(".");
        let Some(state) = self.state.by_path.get_mut(&name) else {
            self.error = Some(TaskError::Unsupported(format!("internal: no optimizer state for {name}")));
            return param;
        };
        match self.state.rule {
            Optimizer::Sgd { lr, momentum } if momentum > 0.0 => {
                let buffer = state[0].clone().mul_scalar(momentum) + grad;
                state[0] = buffer.clone();
                param - buffer.mul_scalar(lr)
            }
            Optimizer::Sgd { lr, .. } => param - grad.mul_scalar(lr),
            Optimizer::Adam { lr, beta1, beta2, eps } => {
                let m = state[0].clone().mul_scalar(beta1) + grad.clone().mul_scalar(1.0 - beta1);
                let v = state[1].clone().mul_scalar(beta2) + grad.clone().mul(grad).mul_scalar(1.0 - beta2);
                state[0] = m.clone();
                state[1] = v.clone();
                let m_hat = m.div_scalar(1.0 - power(beta1, self.step));
                let v_hat = v.div_scalar(1.0 - power(beta2, self.step));
                param - m_hat.div(v_hat.sqrt().add_scalar(eps)).mul_scalar(lr)
            }
        }
    }
}

impl<B: AutodiffBackend> ModuleMapper<B> for Update<'_, B> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(grad) = tensor.grad_remove(&mut self.grads) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let dims = tensor.dims();
        let count = dims.iter().product::<usize>();
        let updated = self.apply(tensor.inner().reshape([count]), grad.reshape([count]));
        Param::from_mapped_value(id, Tensor::from_inner(updated.reshape(dims)).require_grad(), mapper)
    }
}

/// Every float parameter of a module, by path: its shape and values as float32.
#[derive(Default)]
pub struct Collect {
    path: Vec<String>,
    pub params: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    /// Shapes only, without reading the values (for setting up optimizer state).
    pub shapes_only: bool,
    pub error: Option<TaskError>,
}

impl Collect {
    pub fn shapes() -> Collect {
        Collect { shapes_only: true, ..Collect::default() }
    }
}

impl<B: Backend> ModuleVisitor<B> for Collect {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let tensor = param.val();
        let shape = tensor.dims().to_vec();
        let values = if self.shapes_only {
            Vec::new()
        } else {
            match floats(tensor.into_data()) {
                Ok(values) => values,
                Err(error) => {
                    self.error = Some(error);
                    Vec::new()
                }
            }
        };
        self.params.insert(self.path.join("."), (shape, values));
    }
}

/// The values of tensor data as float32.
pub fn floats(data: TensorData) -> Result<Vec<f32>, TaskError> {
    data.convert::<f32>()
        .to_vec::<f32>()
        .map_err(|error| TaskError::Unsupported(format!("internal: cannot read a tensor: {error:?}")))
}

/// Replaces every float parameter with the value of the same path in `params`, checking
/// shapes; records the first mismatch or missing name.
pub struct Load {
    path: Vec<String>,
    pub params: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
    pub error: Option<TaskError>,
}

impl Load {
    pub fn new(params: BTreeMap<String, (Vec<usize>, Vec<f32>)>) -> Load {
        Load { path: Vec::new(), params, error: None }
    }
}

impl<B: Backend> ModuleMapper<B> for Load {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let name = self.path.join(".");
        let (id, tensor, mapper) = param.consume();
        let dims = tensor.dims();
        match self.params.remove(&name) {
            Some((shape, values)) if shape == dims => {
                let mut loaded = Tensor::<B, D>::from_data(TensorData::new(values, dims), &tensor.device());
                if tensor.is_require_grad() {
                    loaded = loaded.require_grad();
                }
                Param::from_mapped_value(id, loaded, mapper)
            }
            found => {
                let why = match found {
                    Some((shape, _)) => format!("has shape {shape:?}, but the config's model has {dims:?}"),
                    None => "is missing".to_string(),
                };
                self.error.get_or_insert(TaskError::BadInput(format!("the checkpoint's parameter {name} {why}")));
                Param::from_mapped_value(id, tensor, mapper)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::power;

    #[test]
    fn power_by_squaring_matches_repeated_multiplication() {
        let mut slow = 1.0f64;
        for exp in 0..200u64 {
            assert!((power(0.9, exp) - slow).abs() <= 1e-13 * slow, "{exp}");
            slow *= 0.9;
        }
        assert_eq!(power(0.999, 0), 1.0);
    }
}
