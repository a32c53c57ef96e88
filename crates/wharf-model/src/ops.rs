//! The numeric kernels of the forward pass besides the dense product ([`crate::dense`]): the
//! convolution's matrix product (via `matrixmultiply`), im2col, max pooling, ReLU, softmax and
//! argmax. Plain loops over slices, no allocation except where the caller hands in a buffer.

/// `c[m×n] = a[m×k] · b[k×n]`, all row-major.
pub fn matmul(a: &[f32], b: &[f32], c: &mut [f32], m: usize, k: usize, n: usize) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    // SAFETY: bounds asserted above; plain row-major strides.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            k as isize,
            1,
            b.as_ptr(),
            n as isize,
            1,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// Geometry of a square-kernel, stride-1 convolution over one CHW image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeom {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub kernel: usize,
    pub padding: usize,
}

impl ConvGeom {
    pub fn out_height(&self) -> usize {
        self.height + 2 * self.padding + 1 - self.kernel
    }
    pub fn out_width(&self) -> usize {
        self.width + 2 * self.padding + 1 - self.kernel
    }
    /// Rows of the im2col matrix (`C·k·k`).
    pub fn patch_len(&self) -> usize {
        self.channels * self.kernel * self.kernel
    }
}

/// Unfolds a CHW image into `cols[(c·k·k) × (oh·ow)]`, so a convolution becomes
/// `weight[out × c·k·k] · cols`. Padding positions read as zero.
pub fn im2col(image: &[f32], g: ConvGeom, cols: &mut [f32]) {
    let (oh, ow) = (g.out_height(), g.out_width());
    let (h, w, k, p) = (g.height, g.width, g.kernel, g.padding);
    debug_assert!(cols.len() >= g.patch_len() * oh * ow);
    let mut row = 0;
    for c in 0..g.channels {
        let plane = &image[c * h * w..(c + 1) * h * w];
        for ky in 0..k {
            for kx in 0..k {
                let dst = &mut cols[row * oh * ow..(row + 1) * oh * ow];
                for oy in 0..oh {
                    let iy = (oy + ky) as isize - p as isize;
                    let out_row = &mut dst[oy * ow..(oy + 1) * ow];
                    if iy < 0 || iy >= h as isize {
                        out_row.fill(0.0);
                        continue;
                    }
                    let src = &plane[iy as usize * w..(iy as usize + 1) * w];
                    for (ox, v) in out_row.iter_mut().enumerate() {
                        let ix = (ox + kx) as isize - p as isize;
                        *v = if ix < 0 || ix >= w as isize {
                            0.0
                        } else {
                            src[ix as usize]
                        };
                    }
                }
                row += 1;
            }
        }
    }
}

/// Non-overlapping `size×size` max pooling of a CHW tensor (output size floored).
pub fn max_pool(input: &[f32], channels: usize, h: usize, w: usize, size: usize, out: &mut [f32]) {
    let (oh, ow) = (h / size, w / size);
    for c in 0..channels {
        let plane = &input[c * h * w..(c + 1) * h * w];
        for oy in 0..oh {
            for ox in 0..ow {
                let mut m = f32::NEG_INFINITY;
                for dy in 0..size {
                    let row = &plane[(oy * size + dy) * w + ox * size..][..size];
                    for &v in row {
                        m = m.max(v);
                    }
                }
                out[c * oh * ow + oy * ow + ox] = m;
            }
        }
    }
}

pub fn relu(values: &mut [f32]) {
    for v in values {
        *v = v.max(0.0);
    }
}

/// In-place, numerically stable softmax of one row.
pub fn softmax(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in row.iter_mut() {
        *v /= sum;
    }
}

/// Index of the largest value (the first one on ties); `None` for an empty slice.
pub fn argmax(values: &[f32]) -> Option<usize> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &v) in values.iter().enumerate() {
        if best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn im2col_with_padding_reads_zeros_outside() {
        // 1 channel 2×2 image, kernel 3, padding 1 -> 2×2 output, 9 rows.
        let g = ConvGeom {
            channels: 1,
            height: 2,
            width: 2,
            kernel: 3,
            padding: 1,
        };
        let mut cols = vec![f32::NAN; 9 * 4];
        im2col(&[1., 2., 3., 4.], g, &mut cols);
        // Centre tap (ky=1,kx=1) is row 4: the image itself.
        assert_eq!(&cols[16..20], &[1., 2., 3., 4.]);
        // Top-left tap (row 0) sees only the image's (0,0) at output (1,1).
        assert_eq!(&cols[0..4], &[0., 0., 0., 1.]);
    }

    #[test]
    fn max_pool_floors_odd_sizes() {
        let input: Vec<f32> = (0..9).map(|v| v as f32).collect(); // 3×3
        let mut out = [0.0; 1];
        max_pool(&input, 1, 3, 3, 2, &mut out);
        assert_eq!(out, [4.0]);
    }

    #[test]
    fn softmax_is_stable_for_large_logits() {
        let mut row = [1000.0, 1000.0];
        softmax(&mut row);
        assert_eq!(row, [0.5, 0.5]);
    }

    #[test]
    fn argmax_prefers_the_first_maximum() {
        assert_eq!(argmax(&[0.1, 0.7, 0.7]), Some(1));
        assert_eq!(argmax(&[]), None);
    }
}
