//! Gradient check: candle's back-propagated gradients of every CNN parameter agree with
//! finite differences of the loss, so the optimiser trains the conv layers, not just the head.

use candle_core::{Device, Tensor};
use wharf_model::Architecture;
use wharf_trainer::net::{Net, loss};

#[test]
fn cnn_gradients_match_finite_differences() {
    let layers = Architecture::Cnn.layers();
    let net = Net::init(&layers, 5).unwrap();
    let x: Vec<f32> = (0..4 * 784)
        .map(|i| ((i * 37 + i / 13) % 255) as f32 / 255.0)
        .collect();
    let input = Tensor::from_slice(&x, (4, 1, 28, 28), &Device::Cpu).unwrap();
    let labels = Tensor::new(&[1u32, 3, 5, 7], &Device::Cpu).unwrap();
    let eval = |net: &Net| -> f64 {
        let l = loss(&net.forward(&input).unwrap(), &labels).unwrap();
        f64::from(l.to_scalar::<f32>().unwrap())
    };
    let l = loss(&net.forward(&input).unwrap(), &labels).unwrap();
    let grads = l.backward().unwrap();
    let mut failures = Vec::new();
    for (name, var) in net.named_vars() {
        let g = grads
            .get(var)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let w = var.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        // Probe the largest-gradient coordinate: its finite difference is well above noise.
        let (i, gi) = g
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
            .map(|(i, v)| (i, *v))
            .unwrap();
        let eps = 1e-2f32;
        let probe = |delta: f32| {
            let mut p = w.clone();
            p[i] += delta;
            var.set(&Tensor::from_vec(p, var.dims(), &Device::Cpu).unwrap())
                .unwrap();
            let v = eval(&net);
            var.set(&Tensor::from_vec(w.clone(), var.dims(), &Device::Cpu).unwrap())
                .unwrap();
            v
        };
        let numeric = (probe(eps) - probe(-eps)) / (2.0 * f64::from(eps));
        let rel = (numeric - f64::from(gi)).abs() / numeric.abs().max(1e-3);
        if rel >= 0.1 {
            failures.push(format!(
                "{name}[{i}]: backprop {gi}, finite difference {numeric}"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
