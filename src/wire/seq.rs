//! TCP sequence numbers: 32-bit values compared and offset modulo 2^32 (RFC 793 section 3.3).
//!
//! Sequence adjustment shifts every sequence and acknowledgment number after a payload rewrite by
//! a signed delta, and decides "before or after the rewrite" by comparison; both must wrap.
//!
//! Invariants: `a < b` iff `(a - b) as i32 < 0`, so ordering is meaningful only for numbers less
//! than 2^31 apart (true within any TCP window). Limitation: `SeqNumber` is deliberately not
//! `Ord`; the relation is not transitive across the whole space and must not key a sorted map.

use core::cmp::Ordering;
use core::fmt;
use core::ops::{Add, AddAssign, Sub, SubAssign};

/// A TCP sequence or acknowledgment number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeqNumber(pub u32);

impl SeqNumber {
    /// The later of two numbers under wrapping comparison.
    pub fn max(self, other: SeqNumber) -> SeqNumber {
        if self < other {
            other
        } else {
            self
        }
    }

    /// The earlier of two numbers under wrapping comparison.
    pub fn min(self, other: SeqNumber) -> SeqNumber {
        if self < other {
            self
        } else {
            other
        }
    }
}

impl Add<i32> for SeqNumber {
    type Output = SeqNumber;
    fn add(self, rhs: i32) -> SeqNumber {
        SeqNumber(self.0.wrapping_add(rhs as u32))
    }
}

impl Sub<i32> for SeqNumber {
    type Output = SeqNumber;
    fn sub(self, rhs: i32) -> SeqNumber {
        SeqNumber(self.0.wrapping_sub(rhs as u32))
    }
}

impl AddAssign<i32> for SeqNumber {
    fn add_assign(&mut self, rhs: i32) {
        *self = *self + rhs;
    }
}

impl SubAssign<i32> for SeqNumber {
    fn sub_assign(&mut self, rhs: i32) {
        *self = *self - rhs;
    }
}

/// The signed distance from `rhs` to `self`, modulo 2^32.
impl Sub<SeqNumber> for SeqNumber {
    type Output = i32;
    fn sub(self, rhs: SeqNumber) -> i32 {
        self.0.wrapping_sub(rhs.0) as i32
    }
}

impl PartialOrd for SeqNumber {
    fn partial_cmp(&self, other: &SeqNumber) -> Option<Ordering> {
        Some((*self - *other).cmp(&0))
    }
}

impl fmt::Display for SeqNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn arithmetic_wraps() {
        let near_top = SeqNumber(u32::MAX - 9);
        assert_eq!(near_top + 10, SeqNumber(0));
        assert_eq!(near_top + 20, SeqNumber(10));
        assert_eq!(SeqNumber(5) - 10, SeqNumber(u32::MAX - 4));
        assert_eq!(SeqNumber(5) + -10, SeqNumber(u32::MAX - 4));
        assert_eq!(SeqNumber(10) - near_top, 20);
        assert_eq!(near_top - SeqNumber(10), -20);
        let mut s = near_top;
        s += 10;
        assert_eq!(s, SeqNumber(0));
        s -= 1;
        assert_eq!(s, SeqNumber(u32::MAX));
    }

    #[test]
    fn ordering_across_the_wrap() {
        let a = SeqNumber(u32::MAX - 100);
        let b = SeqNumber(50);
        assert!(a < b);
        assert!(b > a);
        let same = a;
        assert!(a <= same);
        assert!(a >= same);
        assert_eq!(a.max(b), b);
        assert_eq!(a.min(b), a);
        assert!(SeqNumber(0) > SeqNumber(u32::MAX));
        // Exactly 2^31 apart: each compares below the other; the relation is only for windows.
        assert!(SeqNumber(0) < SeqNumber(1 << 31));
    }

    #[test]
    fn display() {
        assert_eq!(SeqNumber(4_000_000_000).to_string(), "4000000000");
    }

    proptest! {
        #[test]
        fn add_then_diff_round_trips(base in any::<u32>(), delta in any::<i32>()) {
            let a = SeqNumber(base);
            let b = a + delta;
            prop_assert_eq!(b - a, delta);
            prop_assert_eq!(b - delta, a);
            if delta > 0 {
                prop_assert!(a < b);
            } else if delta < 0 && delta != i32::MIN {
                prop_assert!(a > b);
            }
        }
    }
}
