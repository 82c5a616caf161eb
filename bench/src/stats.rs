//! Order statistics of samples: the median and the 99th percentile the report prints.

/// The median of `samples` (the mean of the two middle values for an even count), or `None`
/// for no samples. The input need not be sorted.
pub fn median(samples: &[f64]) -> Option<f64> {
    let sorted = sorted(samples);
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// The `p`-th percentile of `samples` by the nearest-rank method (the smallest value with at
/// least `p`% of the samples at or below it), or `None` for no samples.
///
/// Nearest rank never interpolates, so the answer is always a measured value: with fewer than
/// 100 samples, p99 is the maximum.
///
/// # Panics
/// If `p` is not in `0.0..=100.0`.
pub fn percentile(samples: &[f64], p: f64) -> Option<f64> {
    assert!(
        (0.0..=100.0).contains(&p),
        "percentile {p} is not in 0..=100"
    );
    let sorted = sorted(samples);
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The 99th percentile (nearest rank); `None` for no samples.
pub fn p99(samples: &[f64]) -> Option<f64> {
    percentile(samples, 99.0)
}

fn sorted(samples: &[f64]) -> Vec<f64> {
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_an_odd_count_is_the_middle_value() {
        assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&[7.0]), Some(7.0));
    }

    #[test]
    fn median_of_an_even_count_is_the_mean_of_the_two_middle_values() {
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[1.0, 2.0]), Some(1.5));
    }

    #[test]
    fn empty_input_has_no_statistics_and_does_not_panic() {
        assert_eq!(median(&[]), None);
        assert_eq!(p99(&[]), None);
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn p99_of_1_to_100_is_99_and_of_1_to_1000_is_990() {
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(p99(&hundred), Some(99.0));
        let thousand: Vec<f64> = (1..=1000).rev().map(f64::from).collect();
        assert_eq!(p99(&thousand), Some(990.0));
    }

    #[test]
    fn p99_of_few_samples_is_the_maximum() {
        assert_eq!(p99(&[3.0, 9.0, 1.0]), Some(9.0));
        assert_eq!(p99(&[2.0]), Some(2.0));
    }

    #[test]
    fn percentile_ends_are_the_minimum_and_maximum() {
        let v = [4.0, 8.0, 1.0, 6.0];
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&v, 100.0), Some(8.0));
        assert_eq!(percentile(&v, 50.0), Some(4.0));
    }
}
