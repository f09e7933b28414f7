//! The declared architectures as burn modules, their seeded initialization, and the loss.
//!
//! Burn's own initializers draw from the backend's random generator, which is global to
//! the process and seeded once; two jobs in one agent would disturb each other. So the
//! modules are built with burn's configs and then every parameter is overwritten from a
//! stream of our own, keyed by the config seed and the parameter's path in the module
//! tree: a parameter's initial value depends on nothing else, not even visiting order.
//! Draws are uniform and scaled by square roots only (no logarithms or sines, whose last
//! bits differ between math libraries), so initial values are the same on every machine.

use burn::module::{Module, ModuleMapper, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::transformer::{TransformerEncoder, TransformerEncoderConfig, TransformerEncoderInput};
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::{gelu, log_softmax, relu};
use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use ogpu_core::Hash;
use ogpu_core::rng::DetRng;

use crate::TaskError;
use crate::train::config::{Activation, Architecture};

/// A model of any declared architecture. Its variant's name is the first component of
/// every parameter path (`Mlp.layers.0.weight`).
// A run holds one model, so the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Net<B: Backend> {
    Mlp(Mlp<B>),
    Cnn(Cnn<B>),
    CharTransformer(CharTransformer<B>),
}

/// Linear layers with an activation between them (none after the last).
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    layers: Vec<Linear<B>>,
    #[module(skip)]
    activation: Activation,
}

/// Convolutions with "same" padding and ReLU, then one linear layer over the flattened
/// feature maps.
#[derive(Module, Debug)]
pub struct Cnn<B: Backend> {
    convs: Vec<Conv2d<B>>,
    head: Linear<B>,
    /// Channels, height and width of an input image.
    #[module(skip)]
    image: [usize; 3],
}

/// A GPT-style byte model: token and learned position embeddings, pre-norm transformer
/// blocks with causal attention and a GELU feed-forward of 4 * dim, a final layer norm and
/// a linear head over the 256 byte values.
#[derive(Module, Debug)]
pub struct CharTransformer<B: Backend> {
    token: Embedding<B>,
    position: Embedding<B>,
    blocks: TransformerEncoder<B>,
    norm: LayerNorm<B>,
    head: Linear<B>,
}

/// A batch of model inputs.
pub enum Input<B: Backend> {
    /// `[batch, features]` floats.
    Dense(Tensor<B, 2>),
    /// `[batch, context]` byte values.
    Tokens(Tensor<B, 2, Int>),
}

impl<B: Backend> Net<B> {
    /// Builds the architecture for inputs of `features` values (for text, the context) and
    /// `classes` outputs, initialized from `seed`.
    pub fn new(
        architecture: &Architecture,
        features: usize,
        classes: usize,
        seed: &Hash,
        device: &B::Device,
    ) -> Result<Net<B>, TaskError> {
        let net = match architecture {
            Architecture::Mlp { hidden, activation } => {
                let widths: Vec<usize> =
                    std::iter::once(features).chain(hidden.iter().copied()).chain([classes]).collect();
                let layers = widths.windows(2).map(|pair| LinearConfig::new(pair[0], pair[1]).init(device)).collect();
                Net::Mlp(Mlp { layers, activation: *activation })
            }
            Architecture::Cnn { channels, kernel, image } => {
                let pixels = image[0] * image[1];
                if !features.is_multiple_of(pixels) {
                    return Err(TaskError::BadInput(format!(
                        "the data has {features} features per row, which is not a whole number of {}x{} images \
                         (architecture.cnn.image)",
                        image[0], image[1]
                    )));
                }
                let inputs = features / pixels;
                let mut convs = Vec::new();
                let mut previous = inputs;
                for &width in channels {
                    let config =
                        Conv2dConfig::new([previous, width], [*kernel, *kernel]).with_padding(PaddingConfig2d::Same);
                    convs.push(config.init(device));
                    previous = width;
                }
                let head = LinearConfig::new(previous * pixels, classes).init(device);
                Net::Cnn(Cnn { convs, head, image: [inputs, image[0], image[1]] })
            }
            Architecture::CharTransformer { layers, heads, dim, context } => {
                let blocks = TransformerEncoderConfig::new(*dim, 4 * dim, *heads, *layers)
                    .with_dropout(0.0)
                    .with_norm_first(true)
                    .init(device);
                Net::CharTransformer(CharTransformer {
                    token: EmbeddingConfig::new(classes, *dim).init(device),
                    position: EmbeddingConfig::new(*context, *dim).init(device),
                    blocks,
                    norm: LayerNormConfig::new(*dim).init(device),
                    head: LinearConfig::new(*dim, classes).init(device),
                })
            }
        };
        let mut init = SeededInit { seed: *seed, path: Vec::new(), error: None };
        let net = net.map(&mut init);
        match init.error {
            Some(error) => Err(error),
            None => Ok(net),
        }
    }

    /// The logits `[samples, classes]`; for text every position of every window is a
    /// sample, in row-major order.
    pub fn forward(&self, input: Input<B>) -> Result<Tensor<B, 2>, TaskError> {
        let wrong = |what: &str| TaskError::BadInput(format!("internal: a {what} batch for this architecture"));
        match (self, input) {
            (Net::Mlp(mlp), Input::Dense(x)) => Ok(mlp.forward(x)),
            (Net::Cnn(cnn), Input::Dense(x)) => Ok(cnn.forward(x)),
            (Net::CharTransformer(model), Input::Tokens(x)) => Ok(model.forward(x)),
            (_, Input::Dense(_)) => Err(wrong("dense")),
            (_, Input::Tokens(_)) => Err(wrong("token")),
        }
    }
}

impl<B: Backend> Mlp<B> {
    fn forward(&self, mut x: Tensor<B, 2>) -> Tensor<B, 2> {
        let last = self.layers.len().saturating_sub(1);
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x);
            if i < last {
                x = match self.activation {
                    Activation::Relu => relu(x),
                    Activation::Tanh => x.tanh(),
                    Activation::Gelu => gelu(x),
                };
            }
        }
        x
    }
}

impl<B: Backend> Cnn<B> {
    fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let [channels, height, width] = self.image;
        let batch = x.dims()[0];
        let mut x: Tensor<B, 4> = x.reshape([batch, channels, height, width]);
        for conv in &self.convs {
            x = relu(same_convolution(conv, x));
        }
        self.head.forward(x.flatten(1, 3))
    }
}

/// `conv` over `x` (`[batch, channels, height, width]`) with "same" padding, as a product of
/// the kernels with the image patches (im2col). Burn's CPU convolution computes each
/// output plane on its own, and its gradients likewise, about twenty times slower than
/// PyTorch on these small images; a product goes through the backend's GEMM on every
/// backend. The patches are gathered with one index: each tap of each output pixel names
/// the input pixel it reads, or a zero appended after the image where it falls in the
/// padding. (Measured against the alternatives on the CPU: one gather beat nine shifted
/// copies, and beat keeping the maps as `[channels * pixels, batch]`, whose row gathers
/// burn's CPU backend does one row at a time.)
fn same_convolution<B: Backend>(conv: &Conv2d<B>, x: Tensor<B, 4>) -> Tensor<B, 4> {
    let [batch, channels, height, width] = x.dims();
    let device = x.device();
    let kernels = conv.weight.val();
    let [outputs, _, kernel, _] = kernels.dims();
    let (pixels, taps) = (height * width, channels * kernel * kernel);
    let zero = Tensor::zeros([batch, channels, 1], &device);
    let flat = Tensor::cat(vec![x.reshape([batch, channels, pixels]), zero], 2);
    let index = patch_index(kernel, [height, width]);
    let index = Tensor::<B, 1, Int>::from_data(TensorData::new(index, [kernel * kernel * pixels]), &device);
    // Row c * k * k + tap of a sample's patches: the order of a kernel's weights.
    let patches = flat.select(2, index).reshape([batch, taps, pixels]);
    let mut y = kernels.reshape([1, outputs, taps]).matmul(patches);
    if let Some(bias) = &conv.bias {
        y = y + bias.val().reshape([1, outputs, 1]);
    }
    y.reshape([batch, outputs, height, width])
}

/// For each tap (dy, dx) of a `kernel` x `kernel` window and each pixel of an `image`, the
/// pixel it reads under "same" padding, or `height * width` (the appended zero) outside
/// the image.
fn patch_index(kernel: usize, image: [usize; 2]) -> Vec<i64> {
    let [height, width] = image.map(|n| n as i64);
    let pad = (kernel / 2) as i64;
    let mut index = Vec::with_capacity(kernel * kernel * (height * width) as usize);
    for dy in 0..kernel as i64 {
        for dx in 0..kernel as i64 {
            for row in 0..height {
                for column in 0..width {
                    let (y, x) = (row + dy - pad, column + dx - pad);
                    let inside = (0..height).contains(&y) && (0..width).contains(&x);
                    index.push(if inside { y * width + x } else { height * width });
                }
            }
        }
    }
    index
}

impl<B: Backend> CharTransformer<B> {
    fn forward(&self, tokens: Tensor<B, 2, Int>) -> Tensor<B, 2> {
        let [batch, context] = tokens.dims();
        let device = tokens.device();
        let positions = Tensor::<B, 1, Int>::arange(0..context as i64, &device).reshape([1, context]);
        let x = self.token.forward(tokens) + self.position.forward(positions);
        let mask = burn::nn::attention::generate_autoregressive_mask(batch, context, &device);
        let x = self.blocks.forward(TransformerEncoderInput::new(x).mask_attn(mask));
        let logits = self.head.forward(self.norm.forward(x));
        let classes = logits.dims()[2];
        logits.reshape([batch * context, classes])
    }
}

/// The mean cross-entropy of `logits` against class `targets`.
pub fn cross_entropy<B: Backend>(logits: Tensor<B, 2>, targets: Tensor<B, 1, Int>) -> Tensor<B, 1> {
    let samples = targets.dims()[0];
    let picked = log_softmax(logits, 1).gather(1, targets.reshape([samples, 1]));
    picked.mean().neg()
}

/// Overwrites every float parameter from the seed, by its path (see the module doc).
struct SeededInit {
    seed: Hash,
    /// The path to the parameter about to be mapped, with each component's container type.
    path: Vec<(String, String)>,
    error: Option<TaskError>,
}

impl SeededInit {
    fn values(&mut self, dims: &[usize]) -> Option<Vec<f32>> {
        let name = self.path.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>().join(".");
        let (field, owner) = self.path.last().map(|(f, o)| (f.as_str(), o.as_str())).unwrap_or_default();
        let count: usize = dims.iter().product();
        // The bound of a uniform draw; `None` for a constant.
        let (bound, constant) = match (owner, field) {
            // PyTorch's default for linear and convolution weights: U(-1/sqrt(fan_in), ..).
            // Burn stores a linear weight as [inputs, outputs].
            ("Struct:Linear", "weight") => (Some(1.0 / (dims[0] as f64).sqrt()), 0.0),
            ("Struct:Conv2d", "weight") => (Some(1.0 / (dims[1..].iter().product::<usize>() as f64).sqrt()), 0.0),
            // Unit expected squared norm per vector: U(-a, a) has variance a^2 / 3.
            ("Struct:Embedding", "weight") => (Some((3.0 / dims[1] as f64).sqrt()), 0.0),
            (_, "bias") | ("Struct:LayerNorm", "beta") => (None, 0.0),
            ("Struct:LayerNorm", "gamma") => (None, 1.0),
            _ => {
                self.error = Some(TaskError::Unsupported(format!("internal: no initializer for parameter {name}")));
                return None;
            }
        };
        let Some(bound) = bound else { return Some(vec![constant; count]) };
        let mut rng = DetRng::new(&self.seed, "ogpu/train/init", &[name.as_bytes()]);
        Some(
            (0..count)
                .map(|_| {
                    // 24 random bits: exactly the float32 grid on [0, 1).
                    let unit = (rng.next_u64() >> 40) as f64 / (1u64 << 24) as f64;
                    ((2.0 * unit - 1.0) * bound) as f32
                })
                .collect(),
        )
    }
}

impl<B: Backend> ModuleMapper<B> for SeededInit {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path.push((name.to_string(), container_type.to_string()));
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let dims = tensor.dims();
        let Some(values) = self.values(&dims) else { return Param::from_mapped_value(id, tensor, mapper) };
        let mut fresh = Tensor::<B, D>::from_data(TensorData::new(values, dims), &tensor.device());
        if tensor.is_require_grad() {
            fresh = fresh.require_grad();
        }
        Param::from_mapped_value(id, fresh, mapper)
    }
}

#[cfg(test)]
mod tests {
    use burn::backend::NdArray;
    use burn::backend::ndarray::NdArrayDevice;

    use super::*;

    #[test]
    fn the_patch_product_convolves_as_burn_does() {
        let device = NdArrayDevice::Cpu;
        let mut rng = DetRng::new(&Hash::of_bytes(b"conv"), "test", &[]);
        let mut draw = |n: usize| -> Vec<f32> { (0..n).map(|_| (rng.below(2001) as f32 - 1000.0) / 500.0).collect() };
        for (channels, outputs, kernel) in [(1, 4, 3), (3, 2, 5), (2, 3, 1)] {
            let conv = Conv2dConfig::new([channels, outputs], [kernel, kernel])
                .with_padding(PaddingConfig2d::Same)
                .init::<NdArray<f32>>(&device);
            let x = Tensor::<NdArray<f32>, 4>::from_data(
                // A non-square image, so that height and width cannot be mixed up.
                TensorData::new(draw(2 * channels * 36), [2, channels, 4, 9]),
                &device,
            );
            let ours: Vec<f32> = same_convolution(&conv, x.clone()).into_data().to_vec().unwrap();
            let burns: Vec<f32> = conv.forward(x).into_data().to_vec().unwrap();
            assert_eq!(ours.len(), burns.len());
            let worst = ours.iter().zip(&burns).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
            assert!(worst < 1e-5, "{channels} -> {outputs} channels, {kernel}x{kernel}: off by {worst}");
        }
    }
}
