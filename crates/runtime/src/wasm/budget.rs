//! One memory budget for everything a module can make the host allocate: its linear
//! memories and its tables. Going past it stops the run (rather than failing the grow,
//! which a module could take for a normal answer) so the client learns the limit was hit.

use wasmtime::ResourceLimiter;

/// Host bytes charged per table element: a generous upper bound of what wasmtime stores.
const TABLE_ELEMENT_BYTES: usize = 16;

pub(super) struct MemoryBudget {
    limit: usize,
    used: usize,
}

/// The error that stops a run which went over its budget.
#[derive(Debug, thiserror::Error)]
#[error("memory limit reached")]
pub(super) struct MemoryLimitHit;

impl MemoryBudget {
    pub(super) fn new(limit_mb: u32) -> MemoryBudget {
        let limit = usize::try_from(limit_mb).unwrap_or(usize::MAX).saturating_mul(1 << 20);
        MemoryBudget { limit, used: 0 }
    }

    /// Charges the change from `current` to `desired` bytes of one memory or table.
    fn grow(&mut self, current: usize, desired: usize) -> wasmtime::Result<bool> {
        let used = self.used.saturating_sub(current).saturating_add(desired);
        if used > self.limit {
            return Err(wasmtime::Error::new(MemoryLimitHit));
        }
        self.used = used;
        Ok(true)
    }
}

impl ResourceLimiter for MemoryBudget {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.grow(current, desired)
    }

    fn table_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.grow(current.saturating_mul(TABLE_ELEMENT_BYTES), desired.saturating_mul(TABLE_ELEMENT_BYTES))
    }

    // The host failing to grow after the budget allowed it is not the module's doing;
    // stopping keeps it from seeing an answer that a replica on another host would not.
    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        Err(error)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        Err(error)
    }
}
