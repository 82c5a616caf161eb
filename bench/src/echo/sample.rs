//! One sample of one server under load, and the medians the report shows.

use std::time::Duration;

use crate::stats;

/// What one sample of load on one server did and cost.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct EchoSample {
    /// Round trips completed.
    pub trips: u64,
    /// Wall time of the sample.
    pub wall: Duration,
    /// The server's user CPU time meanwhile (whole clock ticks).
    pub user: Duration,
    /// The server's system CPU time meanwhile (whole clock ticks).
    pub system: Duration,
    /// The load generator's CPU time meanwhile (precise).
    pub client: Duration,
    /// One clock tick, the step of `user` and `system`.
    pub tick: Duration,
}

impl EchoSample {
    /// Round trips per second of wall time.
    pub fn trips_per_second(&self) -> f64 {
        self.trips as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    /// Server user CPU microseconds per round trip.
    pub fn user_us_per_trip(&self) -> f64 {
        self.per_trip(self.user)
    }

    /// Server system CPU microseconds per round trip.
    pub fn system_us_per_trip(&self) -> f64 {
        self.per_trip(self.system)
    }

    /// Load generator CPU microseconds per round trip.
    pub fn client_us_per_trip(&self) -> f64 {
        self.per_trip(self.client)
    }

    /// One clock tick in microseconds per round trip: the resolution of the two figures above.
    pub fn tick_us_per_trip(&self) -> f64 {
        self.per_trip(self.tick)
    }

    /// The server's CPU time (user + system) as a fraction of wall time: 1.0 is one CPU busy.
    pub fn server_busy(&self) -> f64 {
        (self.user + self.system).as_secs_f64() / self.wall.as_secs_f64().max(1e-9)
    }

    /// The load generator's CPU time as a fraction of wall time.
    pub fn client_busy(&self) -> f64 {
        self.client.as_secs_f64() / self.wall.as_secs_f64().max(1e-9)
    }

    fn per_trip(&self, cpu: Duration) -> f64 {
        cpu.as_secs_f64() * 1e6 / self.trips.max(1) as f64
    }
}

/// Server user and system CPU µs per round trip over all of `samples` together: pooling makes
/// the clock ticks small against the whole, where a median of short samples may round to a
/// tick or to nothing.
pub fn pooled_us_per_trip(samples: &[EchoSample]) -> (f64, f64) {
    let trips: u64 = samples.iter().map(|s| s.trips).sum();
    let pooled = EchoSample {
        trips,
        user: samples.iter().map(|s| s.user).sum(),
        system: samples.iter().map(|s| s.system).sum(),
        ..EchoSample::default()
    };
    (pooled.user_us_per_trip(), pooled.system_us_per_trip())
}

/// The medians of one server's measured samples.
#[derive(Copy, Clone, Debug, Default, PartialEq)]
pub struct Medians {
    /// Round trips per second.
    pub trips_per_second: f64,
    /// Server user CPU µs per round trip.
    pub user_us: f64,
    /// Server system CPU µs per round trip.
    pub system_us: f64,
    /// Load generator CPU µs per round trip.
    pub client_us: f64,
    /// One clock tick in µs per round trip: the resolution of `user_us` and `system_us`.
    pub tick_us: f64,
    /// Server CPU time / wall time.
    pub server_busy: f64,
    /// Load generator CPU time / wall time.
    pub client_busy: f64,
    /// Round trips per sample.
    pub trips: f64,
    /// Samples the medians are of.
    pub samples: usize,
}

impl Medians {
    /// The medians of `samples`; all zero for none.
    pub fn of(samples: &[EchoSample]) -> Medians {
        let median = |f: fn(&EchoSample) -> f64| {
            let values: Vec<f64> = samples.iter().map(f).collect();
            stats::median(&values).unwrap_or(0.0)
        };
        Medians {
            trips_per_second: median(EchoSample::trips_per_second),
            user_us: median(EchoSample::user_us_per_trip),
            system_us: median(EchoSample::system_us_per_trip),
            client_us: median(EchoSample::client_us_per_trip),
            tick_us: median(EchoSample::tick_us_per_trip),
            server_busy: median(EchoSample::server_busy),
            client_busy: median(EchoSample::client_busy),
            trips: median(|s| s.trips as f64),
            samples: samples.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(trips: u64, user_ms: u64, system_ms: u64) -> EchoSample {
        EchoSample {
            trips,
            wall: Duration::from_secs(2),
            user: Duration::from_millis(user_ms),
            system: Duration::from_millis(system_ms),
            client: Duration::from_millis(1000),
            tick: Duration::from_millis(10),
        }
    }

    #[test]
    fn per_trip_figures_are_microseconds_of_server_cpu() {
        let s = sample(100_000, 300, 1500);
        assert_eq!(s.trips_per_second(), 50_000.0);
        assert!((s.user_us_per_trip() - 3.0).abs() < 1e-9);
        assert!((s.system_us_per_trip() - 15.0).abs() < 1e-9);
        assert!((s.server_busy() - 0.9).abs() < 1e-9);
        assert!((s.client_busy() - 0.5).abs() < 1e-9);
        assert!((s.tick_us_per_trip() - 0.1).abs() < 1e-9);
    }

    #[test]
    fn pooled_figures_add_ticks_and_trips_before_dividing() {
        let samples = [sample(100_000, 0, 1000), sample(300_000, 40, 1000)];
        let (user, system) = pooled_us_per_trip(&samples);
        assert!((user - 0.1).abs() < 1e-9, "{user}");
        assert!((system - 5.0).abs() < 1e-9, "{system}");
    }

    #[test]
    fn medians_are_taken_figure_by_figure() {
        let samples = [
            sample(100_000, 300, 1500),
            sample(90_000, 900, 900),
            sample(110_000, 363, 1100),
        ];
        let m = Medians::of(&samples);
        assert_eq!(m.trips_per_second, 50_000.0);
        assert!((m.user_us - 3.3).abs() < 1e-9, "{}", m.user_us);
        assert!((m.system_us - 10.0).abs() < 1e-9, "{}", m.system_us);
        assert_eq!(m.samples, 3);
        assert_eq!(Medians::of(&[]), Medians::default());
    }
}
