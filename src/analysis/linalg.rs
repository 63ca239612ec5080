//! Small dense linear systems for the least-squares fits.

/// Solves the augmented system `[A | b]` (k rows of k + 1 values) by
/// Gauss-Jordan elimination with partial pivoting; none when singular.
pub(crate) fn solve(mut a: Vec<Vec<f64>>) -> Option<Vec<f64>> {
    let k = a.len();
    for c in 0..k {
        let pivot = (c..k).max_by(|&r, &s| a[r][c].abs().total_cmp(&a[s][c].abs()))?;
        if a[pivot][c].abs() < 1e-12 {
            return None;
        }
        a.swap(c, pivot);
        let pivot_row = a[c].clone();
        for (r, row) in a.iter_mut().enumerate() {
            if r == c {
                continue;
            }
            let f = row[c] / pivot_row[c];
            for (x, p) in row.iter_mut().zip(&pivot_row).skip(c) {
                *x -= f * p;
            }
        }
    }
    Some((0..k).map(|i| a[i][k] / a[i][i]).collect())
}

/// Least squares of `y` on the regressor columns (no implicit intercept),
/// through the normal equations; none when they are singular.
pub(crate) fn least_squares(cols: &[Vec<f64>], y: &[f64]) -> Option<Vec<f64>> {
    let a = cols
        .iter()
        .map(|ci| {
            let mut row: Vec<f64> = cols
                .iter()
                .map(|cj| ci.iter().zip(cj).map(|(p, q)| p * q).sum())
                .collect();
            row.push(ci.iter().zip(y).map(|(p, q)| p * q).sum());
            row
        })
        .collect();
    solve(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solves_and_fits() {
        // x + y = 3, x - y = 1
        assert_eq!(
            solve(vec![vec![1.0, 1.0, 3.0], vec![1.0, -1.0, 1.0]]),
            Some(vec![2.0, 1.0])
        );
        assert_eq!(solve(vec![vec![1.0, 1.0, 3.0], vec![2.0, 2.0, 6.0]]), None);
        // y = 2 + 3x exactly
        let x = [0.0, 1.0, 2.0, 3.0];
        let y: Vec<f64> = x.iter().map(|x| 2.0 + 3.0 * x).collect();
        let c = least_squares(&[vec![1.0; 4], x.to_vec()], &y).unwrap();
        assert!((c[0] - 2.0).abs() < 1e-9 && (c[1] - 3.0).abs() < 1e-9);
    }
}
