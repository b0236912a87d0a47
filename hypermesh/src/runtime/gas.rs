//! Gas: what a transaction's execution costs, metered as it runs.
//!
//! The schedule prices what a validator spends: the signature check and the
//! bytes every validator stores and hashes, then each state read and write
//! and each event. A transaction that reaches its limit fails (its writes
//! are dropped) and still pays its fee.

use crate::error::{Error, Result};

/// The cost schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GasSchedule {
    /// Every transaction (covers the FN-DSA verification and the nonce
    /// and fee bookkeeping).
    pub base: u64,
    /// Per byte of the encoded transaction.
    pub per_tx_byte: u64,
    /// Per state read, plus `per_byte` for key and value.
    pub read: u64,
    /// Per state write or delete, plus `per_byte` for key and value.
    pub write: u64,
    /// Per event, plus `per_byte` of its size.
    pub event: u64,
    /// Per byte read, written or emitted.
    pub per_byte: u64,
}

impl Default for GasSchedule {
    fn default() -> Self {
        GasSchedule {
            base: 20_000,
            per_tx_byte: 4,
            read: 200,
            write: 1_000,
            event: 300,
            per_byte: 3,
        }
    }
}

impl GasSchedule {
    /// The gas a transaction of `tx_bytes` costs before it runs.
    pub fn intrinsic(&self, tx_bytes: usize) -> u64 {
        self.base
            .saturating_add(self.per_tx_byte.saturating_mul(tx_bytes as u64))
    }
}

/// Counts gas against a limit.
#[derive(Debug, Clone)]
pub struct GasMeter {
    schedule: GasSchedule,
    limit: u64,
    used: u64,
}

impl GasMeter {
    /// A meter with `limit`, nothing used.
    pub fn new(schedule: GasSchedule, limit: u64) -> Self {
        GasMeter {
            schedule,
            limit,
            used: 0,
        }
    }

    /// Gas used so far.
    pub fn used(&self) -> u64 {
        self.used
    }

    /// Charges `amount`, failing with [`Error::OutOfGas`] past the limit
    /// (the meter then shows the limit as used).
    pub fn charge(&mut self, amount: u64) -> Result<()> {
        let needed = self.used.saturating_add(amount);
        if needed > self.limit {
            self.used = self.limit;
            return Err(Error::OutOfGas {
                limit: self.limit,
                needed,
            });
        }
        self.used = needed;
        Ok(())
    }

    pub(crate) fn charge_read(&mut self, bytes: usize) -> Result<()> {
        self.charge(self.cost(self.schedule.read, bytes))
    }

    pub(crate) fn charge_write(&mut self, bytes: usize) -> Result<()> {
        self.charge(self.cost(self.schedule.write, bytes))
    }

    pub(crate) fn charge_event(&mut self, bytes: usize) -> Result<()> {
        self.charge(self.cost(self.schedule.event, bytes))
    }

    fn cost(&self, fixed: u64, bytes: usize) -> u64 {
        fixed.saturating_add(self.schedule.per_byte.saturating_mul(bytes as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_meter_stops_at_the_limit_and_reports_what_was_needed() {
        let mut m = GasMeter::new(GasSchedule::default(), 2_000);
        m.charge_read(10).expect("230 fits");
        assert_eq!(m.used(), 230);
        match m.charge_write(1_000) {
            Err(Error::OutOfGas { limit: 2_000, needed }) => assert_eq!(needed, 230 + 1_000 + 3_000),
            other => panic!("{other:?}"),
        }
        assert_eq!(m.used(), 2_000, "a failed transaction used its whole limit");
        assert!(m.charge(u64::MAX).is_err(), "no overflow");
    }
}
