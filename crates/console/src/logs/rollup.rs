//! The maths of the rollups, with no database: latency histograms in fixed
//! log-scale bins (percentiles within 1/16 of the true value), the measures
//! a rollup row sums, the buckets of each grain, and how a time range splits
//! into whole days, hours and minutes plus raw edges (so totals over any
//! range are exact while charts read only rollups).

use std::collections::BTreeMap;

/// Sub-bins per power of two: 8, so a bin spans at most 1/8 of its lower
/// bound and its midpoint is within 1/16 of any value in it.
const SUB_BITS: u32 = 3;
const SUB: i64 = 1 << SUB_BITS;

/// The highest bin (that of `i64::MAX`).
pub const LAST_BIN: u16 = 8 * 60 + 7;

/// The bin of a latency in microseconds. Values below 8 µs have a bin each
/// (0 and negative share bin 0); above, each power of two is cut into 8.
pub fn bin_of(us: i64) -> u16 {
    if us < SUB {
        return us.max(0) as u16;
    }
    let e = 63 - us.leading_zeros() as i64; // floor(log2(us)), >= 3
    let m = (us >> (e - SUB_BITS as i64)) & (SUB - 1);
    (SUB * (e - 2) + m) as u16
}

/// The values a bin holds: `[low, high)`.
pub fn bin_bounds(bin: u16) -> (i64, i64) {
    let bin = i64::from(bin);
    if bin < SUB {
        return (bin, bin + 1);
    }
    let e = bin / SUB + 2;
    let m = bin % SUB;
    let shift = e - SUB_BITS as i64;
    let at = |k: i64| i64::try_from(i128::from(k) << shift).unwrap_or(i64::MAX);
    (at(SUB + m), at(SUB + m + 1))
}

/// The value a bin stands for: its midpoint (exact below 16 µs).
pub fn bin_value(bin: u16) -> i64 {
    let (low, high) = bin_bounds(bin);
    low + (high - low - 1) / 2
}

/// Counts of latencies per bin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram(BTreeMap<u16, u64>);

impl Histogram {
    pub fn add(&mut self, us: i64) {
        *self.0.entry(bin_of(us)).or_default() += 1;
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (bin, n) in &other.0 {
            *self.0.entry(*bin).or_default() += n;
        }
    }

    pub fn count(&self) -> u64 {
        self.0.values().sum()
    }

    /// The value at fraction `p` (nearest rank, as the gateway computes
    /// it), as its bin's midpoint, never above `max`; 0 when empty.
    pub fn percentile(&self, p: f64, max: i64) -> i64 {
        let count = self.count();
        if count == 0 {
            return 0;
        }
        let rank = ((count as f64 * p).ceil() as u64).clamp(1, count);
        let mut seen = 0;
        for (bin, n) in &self.0 {
            seen += n;
            if seen >= rank {
                return bin_value(*bin).min(max.max(0));
            }
        }
        max
    }

    /// Varints: (bin, count) pairs in bin order.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.0.len() * 3);
        for (bin, n) in &self.0 {
            varint(&mut out, u64::from(*bin));
            varint(&mut out, *n);
        }
        out
    }

    /// The inverse of [`Histogram::encode`]; `None` for bytes it did not write.
    pub fn decode(mut bytes: &[u8]) -> Option<Histogram> {
        let mut bins = BTreeMap::new();
        while !bytes.is_empty() {
            let bin = u16::try_from(read_varint(&mut bytes)?)
                .ok()
                .filter(|b| *b <= LAST_BIN)?;
            let n = read_varint(&mut bytes)?;
            *bins.entry(bin).or_default() += n;
        }
        Some(Histogram(bins))
    }
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn read_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes.split_first()?;
        *bytes = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// What a rollup row sums.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Measures {
    pub requests: i64,
    /// Answers with a status of 400 or more (as the gateway counts them).
    pub errors: i64,
    /// 402 answers.
    pub payment_required: i64,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub cost_micros: i64,
    pub latency_sum_us: i64,
    pub latency_max_us: i64,
    pub hist: Histogram,
}

/// The parts of a record the measures count.
#[derive(Debug, Clone, Copy)]
pub struct Fact {
    pub status: u16,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub cost_micros: i64,
    pub latency_us: i64,
}

impl Measures {
    pub fn add(&mut self, f: &Fact) {
        self.requests += 1;
        self.errors += i64::from(f.status >= 400);
        self.payment_required += i64::from(f.status == 402);
        self.tokens_in += f.tokens_in;
        self.tokens_out += f.tokens_out;
        self.cost_micros += f.cost_micros;
        self.latency_sum_us += f.latency_us;
        self.latency_max_us = self.latency_max_us.max(f.latency_us);
        self.hist.add(f.latency_us);
    }

    pub fn merge(&mut self, o: &Measures) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.payment_required += o.payment_required;
        self.tokens_in += o.tokens_in;
        self.tokens_out += o.tokens_out;
        self.cost_micros += o.cost_micros;
        self.latency_sum_us += o.latency_sum_us;
        self.latency_max_us = self.latency_max_us.max(o.latency_max_us);
        self.hist.merge(&o.hist);
    }

    pub fn percentile(&self, p: f64) -> i64 {
        self.hist.percentile(p, self.latency_max_us)
    }
}

/// The width of a rollup's buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Grain {
    Minute,
    Hour,
    Day,
}

impl Grain {
    pub const ALL: [Grain; 3] = [Grain::Minute, Grain::Hour, Grain::Day];

    pub fn seconds(self) -> i64 {
        match self {
            Grain::Minute => 60,
            Grain::Hour => 3_600,
            Grain::Day => 86_400,
        }
    }

    pub fn micros(self) -> i64 {
        self.seconds() * 1_000_000
    }

    pub fn table(self) -> &'static str {
        match self {
            Grain::Minute => "rollup_minute",
            Grain::Hour => "rollup_hour",
            Grain::Day => "rollup_day",
        }
    }

    /// The start (unix seconds) of the bucket holding `at_us`.
    pub fn bucket_of(self, at_us: i64) -> i64 {
        at_us.div_euclid(self.micros()) * self.seconds()
    }
}

/// A piece of a time range: whole buckets of a grain, or raw records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment {
    /// Buckets starting in `[from_s, to_s)` (unix seconds).
    Buckets {
        grain: Grain,
        from_s: i64,
        to_s: i64,
    },
    /// Records that arrived in `[from_us, to_us)`, read one by one (less
    /// than a minute at each edge of the range; two edges that meet across
    /// a minute boundary are one piece).
    Raw { from_us: i64, to_us: i64 },
}

/// Splits `[from_us, to_us)` into the fewest whole buckets (the coarsest
/// that fit) and raw edges shorter than a minute. Adjacent pieces of the
/// same kind are merged.
pub fn decompose(from_us: i64, to_us: i64) -> Vec<Segment> {
    let mut out: Vec<Segment> = Vec::new();
    let mut at = from_us;
    while at < to_us {
        let grain = [Grain::Day, Grain::Hour, Grain::Minute]
            .into_iter()
            .find(|g| at.rem_euclid(g.micros()) == 0 && at + g.micros() <= to_us);
        let next = match grain {
            Some(g) => {
                // As many whole buckets of this grain as fit.
                let n = (to_us - at) / g.micros();
                let end = at + n * g.micros();
                // Stop at the next coarser boundary, so a coarser grain can
                // take over from there.
                let end = match g {
                    Grain::Minute => end.min(next_boundary(at, Grain::Hour)),
                    Grain::Hour => end.min(next_boundary(at, Grain::Day)),
                    Grain::Day => end,
                };
                push(
                    &mut out,
                    Segment::Buckets {
                        grain: g,
                        from_s: at / 1_000_000,
                        to_s: end / 1_000_000,
                    },
                );
                end
            }
            None => {
                let end = next_boundary(at, Grain::Minute).min(to_us);
                push(
                    &mut out,
                    Segment::Raw {
                        from_us: at,
                        to_us: end,
                    },
                );
                end
            }
        };
        at = next;
    }
    out
}

fn next_boundary(at_us: i64, g: Grain) -> i64 {
    (at_us.div_euclid(g.micros()) + 1) * g.micros()
}

fn push(out: &mut Vec<Segment>, s: Segment) {
    match (out.last_mut(), s) {
        (
            Some(Segment::Buckets {
                grain: g1, to_s, ..
            }),
            Segment::Buckets {
                grain: g2,
                from_s,
                to_s: end,
            },
        ) if *g1 == g2 && *to_s == from_s => *to_s = end,
        (
            Some(Segment::Raw { to_us, .. }),
            Segment::Raw {
                from_us,
                to_us: end,
            },
        ) if *to_us == from_us => *to_us = end,
        _ => out.push(s),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn bins_tile_the_line_and_stay_within_an_eighth() {
        let mut previous_high = 0;
        for bin in 0..=LAST_BIN {
            let (low, high) = bin_bounds(bin);
            assert_eq!(low, previous_high, "bin {bin} starts where the last ended");
            assert!(high > low);
            if low >= 8 {
                assert!((high - low) * 8 <= low, "bin {bin}: [{low}, {high})");
            }
            previous_high = high;
            for v in [low, low + (high - low) / 2, high - 1] {
                assert_eq!(bin_of(v), bin, "{v}");
            }
            let mid = bin_value(bin);
            assert!(mid >= low && mid < high);
        }
        assert_eq!(bin_of(-5), 0);
        assert_eq!(bin_of(0), 0);
        assert_eq!(bin_of(7), 7);
        assert_eq!(bin_of(8), 8);
        assert_eq!(bin_of(i64::MAX), LAST_BIN);
        assert_eq!(bin_bounds(LAST_BIN).1, i64::MAX);
        // Exact below 16 µs.
        for v in 0..16 {
            assert_eq!(bin_value(bin_of(v)), v);
        }
    }

    /// The gateway's percentile: nearest rank over the sorted values.
    fn exact(sorted: &[i64], p: f64) -> i64 {
        let n = sorted.len() as u64;
        let rank = ((n as f64 * p).ceil() as u64).clamp(1, n);
        sorted[rank as usize - 1]
    }

    #[test]
    fn percentiles_from_the_histogram_are_within_a_sixteenth_of_the_exact_ones() {
        // A deterministic spread over six orders of magnitude.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for size in [1usize, 2, 3, 10, 99, 1_000, 12_345] {
            let mut values: Vec<i64> = (0..size)
                .map(|_| {
                    let magnitude = next() % 7;
                    (next() % 10u64.pow(magnitude as u32 + 1)) as i64
                })
                .collect();
            let mut m = Measures::default();
            for v in &values {
                m.add(&Fact {
                    status: 200,
                    tokens_in: 0,
                    tokens_out: 0,
                    cost_micros: 0,
                    latency_us: *v,
                });
            }
            values.sort_unstable();
            for p in [0.5, 0.95, 0.99, 1.0, 0.0001] {
                let want = exact(&values, p);
                let got = m.percentile(p);
                let err = (got - want).abs();
                assert!(
                    err * 16 <= want.max(1) || err == 0,
                    "size {size} p{p}: {got} vs {want}"
                );
                // Never above the largest value.
                assert!(got <= *values.last().unwrap());
            }
        }
        assert_eq!(Measures::default().percentile(0.5), 0);
    }

    #[test]
    fn measures_count_like_the_gateway_and_merge_in_any_order() {
        let facts = [
            (200, 5, 7, 1_500, 1_000),
            (402, 0, 0, 0, 300),
            (401, 0, 0, 0, 200),
            (500, 3, 0, 0, 50_000),
            (200, 1, 1, 2, 900),
        ];
        let fact = |(status, tokens_in, tokens_out, cost_micros, latency_us)| Fact {
            status,
            tokens_in,
            tokens_out,
            cost_micros,
            latency_us,
        };
        let mut all = Measures::default();
        for f in facts {
            all.add(&fact(f));
        }
        assert_eq!(
            (
                all.requests,
                all.errors,
                all.payment_required,
                all.tokens_in,
                all.tokens_out,
                all.cost_micros,
                all.latency_sum_us,
                all.latency_max_us
            ),
            (5, 3, 1, 9, 8, 1_502, 52_400, 50_000)
        );
        assert_eq!(all.hist.count(), 5);
        // Split and merged back, in either order: the same.
        let (mut a, mut b) = (Measures::default(), Measures::default());
        for (i, f) in facts.into_iter().enumerate() {
            if i % 2 == 0 { &mut a } else { &mut b }.add(&fact(f));
        }
        let mut ab = a.clone();
        ab.merge(&b);
        let mut ba = b;
        ba.merge(&a);
        assert_eq!(ab, all);
        assert_eq!(ba, all);
    }

    #[test]
    fn histograms_round_trip_through_their_encoding() {
        let mut h = Histogram::default();
        for v in [0, 1, 7, 8, 1_000, 1_000, 123_456_789, i64::MAX] {
            h.add(v);
        }
        for _ in 0..300 {
            h.add(42);
        }
        let bytes = h.encode();
        assert_eq!(Histogram::decode(&bytes), Some(h));
        assert_eq!(Histogram::decode(&[]), Some(Histogram::default()));
        assert_eq!(Histogram::decode(&[0x80]), None, "a cut varint");
        assert_eq!(
            Histogram::decode(&[0xff, 0xff, 0x7f, 1]),
            None,
            "no such bin"
        );
    }

    #[test]
    fn buckets_are_utc_aligned() {
        let t = 1_764_064_825_123_456; // 2025-11-25T10:00:25.123456Z
        assert_eq!(Grain::Minute.bucket_of(t), 1_764_064_800);
        assert_eq!(Grain::Hour.bucket_of(t), 1_764_064_800);
        assert_eq!(Grain::Day.bucket_of(t), 1_764_028_800);
        assert_eq!(Grain::Minute.bucket_of(-1), -60);
    }

    #[test]
    fn ranges_split_into_the_coarsest_whole_buckets_and_short_raw_edges() {
        const M: i64 = 60_000_000;
        const H: i64 = 60 * M;
        const D: i64 = 24 * H;
        let day0 = 20_000 * D;
        // 23:58:30 on day 0 to 01:02:10 on day 3.
        let from = day0 + 23 * H + 58 * M + 30_000_000;
        let to = day0 + 3 * D + H + 2 * M + 10_000_000;
        let s = |us: i64| us / 1_000_000;
        assert_eq!(
            decompose(from, to),
            vec![
                Segment::Raw {
                    from_us: from,
                    to_us: day0 + 23 * H + 59 * M
                },
                Segment::Buckets {
                    grain: Grain::Minute,
                    from_s: s(day0 + 23 * H + 59 * M),
                    to_s: s(day0 + D)
                },
                Segment::Buckets {
                    grain: Grain::Day,
                    from_s: s(day0 + D),
                    to_s: s(day0 + 3 * D)
                },
                Segment::Buckets {
                    grain: Grain::Hour,
                    from_s: s(day0 + 3 * D),
                    to_s: s(day0 + 3 * D + H)
                },
                Segment::Buckets {
                    grain: Grain::Minute,
                    from_s: s(day0 + 3 * D + H),
                    to_s: s(day0 + 3 * D + H + 2 * M)
                },
                Segment::Raw {
                    from_us: day0 + 3 * D + H + 2 * M,
                    to_us: to
                },
            ]
        );
        // Inside one minute: raw only; empty and reversed ranges: nothing.
        assert_eq!(
            decompose(from, from + 10),
            vec![Segment::Raw {
                from_us: from,
                to_us: from + 10
            }]
        );
        assert!(decompose(from, from).is_empty());
        assert!(decompose(to, from).is_empty());
        // Every piece is covered once, in order, for many ranges.
        let mut state = 7u64;
        for _ in 0..2_000 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            let a = day0 + (state >> 33) as i64 % (5 * D);
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            let b = a + (state >> 33) as i64 % (3 * D);
            let mut at = a;
            for seg in decompose(a, b) {
                let (start, end) = match seg {
                    Segment::Raw { from_us, to_us } => {
                        // An edge, or two joined across a minute boundary.
                        assert!(to_us - from_us < 2 * M);
                        (from_us, to_us)
                    }
                    Segment::Buckets {
                        grain,
                        from_s,
                        to_s,
                    } => {
                        assert_eq!(from_s % grain.seconds(), 0);
                        assert_eq!(to_s % grain.seconds(), 0);
                        (from_s * 1_000_000, to_s * 1_000_000)
                    }
                };
                assert_eq!(start, at);
                assert!(end > start);
                at = end;
            }
            assert_eq!(at, a.max(b));
        }
    }
}
