//! Hand-written CPU kernels for the CNN, as candle custom ops with their backward passes, on
//! channels-last (`[B, H, W, C]`) activations.
//!
//! Why: candle 0.11's CPU conv2d back-propagates into the input with a direct
//! `conv_transpose2d` (a `vec_dot` per output pixel, and it runs even for the first layer,
//! whose input needs no gradient), and max pooling as strided reductions; profiling the CNN at
//! batch 32 showed those, not the matrix products, taking most of the time. Here a convolution
//! is an im2col ([`Im2col`], backward [`Col2im`]) followed by one matrix product on the
//! `[B·OH·OW, C·k·k + 1]` patch matrix (the bias included), and pooling a single pass that routes the gradient to each
//! window's maximum ([`MaxPool`], backward [`MaxPoolGrad`]).

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor, bail};
use wharf_model::ops::ConvGeom;

/// The contiguous f32 data of a custom op's argument.
fn slice<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<&'a [f32]> {
    let data = storage.as_slice::<f32>()?;
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!("{op}: the argument must be contiguous"),
    }
}

/// A batch of `[B, H, W, C]` inputs to one convolution, whose geometry (square, stride 1, zero
/// padding) is the same `ConvGeom` the model server's forward pass uses.
#[derive(Debug, Clone, Copy)]
pub struct ConvShape {
    pub batch: usize,
    pub geom: ConvGeom,
}

impl ConvShape {
    fn input_len(&self) -> usize {
        self.batch * self.geom.height * self.geom.width * self.geom.channels
    }
    /// Columns of the patch matrix: the patch, then a constant 1 that multiplies the bias, so
    /// the bias gradient comes out of the weight-gradient matrix product instead of a strided
    /// column sum.
    pub fn cols(&self) -> usize {
        self.geom.patch_len() + 1
    }
    fn rows(&self) -> usize {
        self.batch * self.geom.out_height() * self.geom.out_width()
    }

    /// Calls `f(patch_row, column, input_index)` for every in-bounds patch entry.
    fn for_each(&self, mut f: impl FnMut(usize, usize, usize)) {
        let ConvGeom {
            channels: c,
            height: h,
            width: w,
            kernel: k,
            padding: p,
        } = self.geom;
        let (oh, ow) = (self.geom.out_height(), self.geom.out_width());
        for b in 0..self.batch {
            for oy in 0..oh {
                for ox in 0..ow {
                    let row = (b * oh + oy) * ow + ox;
                    for ky in 0..k {
                        let Some(iy) = (oy + ky).checked_sub(p).filter(|&y| y < h) else {
                            continue;
                        };
                        for kx in 0..k {
                            let Some(ix) = (ox + kx).checked_sub(p).filter(|&x| x < w) else {
                                continue;
                            };
                            let base = ((b * h + iy) * w + ix) * c;
                            for ch in 0..c {
                                f(row, (ch * k + ky) * k + kx, base + ch);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `[B, H, W, C]` -> patch matrix `[B·OH·OW, C·k·k + 1]`: zeros where the window overhangs,
/// and a last column of ones for the bias.
pub struct Im2col(pub ConvShape);

impl CustomOp1 for Im2col {
    fn name(&self) -> &'static str {
        "im2col-nhwc"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = self.0;
        let x = slice(storage, layout, self.name())?;
        if x.len() != g.input_len() {
            bail!("im2col: input has {} values, expected {g:?}", x.len());
        }
        let cols = g.cols();
        let mut out = vec![0f32; g.rows() * cols];
        g.for_each(|row, col, i| out[row * cols + col] = x[i]);
        for row in out.chunks_exact_mut(cols) {
            row[cols - 1] = 1.0;
        }
        Ok((CpuStorage::F32(out), Shape::from((g.rows(), cols))))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad_res.contiguous()?.apply_op1(Col2im(self.0))?))
    }
}

/// The adjoint of [`Im2col`]: sums each patch entry back into its input position (the bias
/// column has none).
pub struct Col2im(pub ConvShape);

impl CustomOp1 for Col2im {
    fn name(&self) -> &'static str {
        "col2im-nhwc"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = self.0;
        let cols_data = slice(storage, layout, self.name())?;
        let cols = g.cols();
        if cols_data.len() != g.rows() * cols {
            bail!(
                "col2im: input has {} values, expected {g:?}",
                cols_data.len()
            );
        }
        let mut out = vec![0f32; g.input_len()];
        g.for_each(|row, col, i| out[i] += cols_data[row * cols + col]);
        Ok((
            CpuStorage::F32(out),
            Shape::from((g.batch, g.geom.height, g.geom.width, g.geom.channels)),
        ))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad_res.contiguous()?.apply_op1(Im2col(self.0))?))
    }
}

/// Window maxima of non-overlapping `size` pooling over `[B, H, W, C]`, the output size floored
/// like wharf-model does; calls `f(output_offset, input_row, maxima)` for each output row of
/// pixels, with the input rows of the windows, so a caller can find where each maximum is.
fn pool_rows(
    x: &[f32],
    dims: (usize, usize, usize, usize),
    size: usize,
    mut f: impl FnMut(usize, &[usize], &[f32]),
) {
    let (b, h, w, c) = dims;
    let (oh, ow) = (h / size, w / size);
    let mut maxima = vec![f32::NEG_INFINITY; ow * c];
    let mut rows = vec![0; size];
    for bi in 0..b {
        for oy in 0..oh {
            maxima.fill(f32::NEG_INFINITY);
            for (dy, row) in rows.iter_mut().enumerate() {
                *row = (bi * h + oy * size + dy) * w * c;
                let input = &x[*row..*row + w * c];
                for (ox, m) in maxima.chunks_exact_mut(c).enumerate() {
                    for dx in 0..size {
                        let at = (ox * size + dx) * c;
                        for (m, &v) in m.iter_mut().zip(&input[at..at + c]) {
                            *m = m.max(v);
                        }
                    }
                }
            }
            f((bi * oh + oy) * ow * c, &rows, &maxima);
        }
    }
}

/// Max pooling over `[B, H, W, C]`.
pub struct MaxPool {
    pub size: usize,
}

impl CustomOp1 for MaxPool {
    fn name(&self) -> &'static str {
        "max-pool-nhwc"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (b, h, w, c) = layout.shape().dims4()?;
        let x = slice(storage, layout, self.name())?;
        let (size, (oh, ow)) = (self.size, (h / self.size, w / self.size));
        let mut out = vec![0f32; b * oh * ow * c];
        pool_rows(x, (b, h, w, c), size, |o, _, maxima| {
            out[o..o + maxima.len()].copy_from_slice(maxima)
        });
        Ok((
            CpuStorage::F32(out),
            Shape::from((b, h / self.size, w / self.size, c)),
        ))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(arg.contiguous()?.apply_op2_no_bwd(
            &grad_res.contiguous()?,
            &MaxPoolGrad { size: self.size },
        )?))
    }
}

/// The gradient of [`MaxPool`] with respect to its input: `(input, grad_output) -> grad_input`.
pub struct MaxPoolGrad {
    pub size: usize,
}

impl CustomOp2 for MaxPoolGrad {
    fn name(&self) -> &'static str {
        "max-pool-nhwc-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, h, w, c) = l1.shape().dims4()?;
        let x = slice(s1, l1, self.name())?;
        let grad = slice(s2, l2, self.name())?;
        let outputs = b * (h / self.size) * (w / self.size) * c;
        if grad.len() != outputs {
            bail!(
                "max-pool grad: {} gradients for {outputs} outputs",
                grad.len()
            );
        }
        // Each gradient goes to its window's maximum, the first one (row-major) on ties.
        let size = self.size;
        let mut out = vec![0f32; x.len()];
        let mut routed = vec![false; (w / size) * c];
        pool_rows(x, (b, h, w, c), size, |o, rows, maxima| {
            routed.fill(false);
            let grad = &grad[o..o + maxima.len()];
            for &row in rows {
                for (ox, ((m, g), done)) in maxima
                    .chunks_exact(c)
                    .zip(grad.chunks_exact(c))
                    .zip(routed.chunks_exact_mut(c))
                    .enumerate()
                {
                    for dx in 0..size {
                        let at = row + (ox * size + dx) * c;
                        for ch in 0..c {
                            if !done[ch] && x[at + ch] == m[ch] {
                                out[at + ch] = g[ch];
                                done[ch] = true;
                            }
                        }
                    }
                }
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// A tie sends the whole gradient to one position (the first), never to several.
    #[test]
    fn pooling_gradient_goes_to_one_maximum_on_ties() {
        let x = Tensor::new(&[0f32, 2.0, 2.0, 1.0, 5.0, 5.0, 5.0, 5.0], &Device::Cpu).unwrap();
        let x = x.reshape((1, 2, 2, 2)).unwrap();
        let grad = Tensor::new(&[3f32, 7.0], &Device::Cpu).unwrap();
        let grad = grad.reshape((1, 1, 1, 2)).unwrap();
        let pooled = x.apply_op1_no_bwd(&MaxPool { size: 2 }).unwrap();
        assert_eq!(
            pooled.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            [5.0, 5.0]
        );
        let g = x.apply_op2_no_bwd(&grad, &MaxPoolGrad { size: 2 }).unwrap();
        assert_eq!(
            g.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            [0.0, 0.0, 0.0, 0.0, 3.0, 7.0, 0.0, 0.0]
        );
    }
}
