//! What a module sees while it runs: the state as of the parent block with
//! this block's writes on top, a gas meter, and an event log.
//!
//! Writes go to the innermost layer. A transaction runs in a layer of its
//! own that is merged into the block's only if it succeeds, so a failed
//! transaction leaves no partial writes (its fee, charged in a layer
//! below, stays charged).

use std::collections::BTreeMap;

use crate::fast_map::FastMap;

use stoq::crypto::PublicKey;

use super::gas::GasMeter;
use super::receipt::Event;
use crate::error::{Error, Result};
use crate::types::AccountId;

/// Read access to committed state (the parent block's).
pub trait StateRead {
    /// The value under `key`, if any.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
}

/// Pending writes: `None` deletes.
pub type WriteSet = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// An empty committed state (the one before genesis).
#[derive(Debug, Default, Clone)]
pub struct MemState(pub BTreeMap<Vec<u8>, Vec<u8>>);

impl StateRead for MemState {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.0.get(key).cloned())
    }
}

/// A committed state read through a cache: for one batch of reads of a
/// state that does not change meanwhile (admitting a burst of
/// transactions from the same senders reads the same few keys again and
/// again).
pub struct CachedRead<'a, S: ?Sized> {
    state: &'a S,
    cache: std::cell::RefCell<FastMap<Vec<u8>, Option<Vec<u8>>>>,
}

impl<'a, S: StateRead + ?Sized> CachedRead<'a, S> {
    /// `state`, cached.
    pub fn new(state: &'a S) -> Self {
        CachedRead {
            state,
            cache: std::cell::RefCell::new(FastMap::default()),
        }
    }
}

impl<S: StateRead + ?Sized> StateRead for CachedRead<'_, S> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(v) = self.cache.borrow().get(key) {
            return Ok(v.clone());
        }
        let v = self.state.get(key)?;
        self.cache.borrow_mut().insert(key.to_vec(), v.clone());
        Ok(v)
    }
}

impl MemState {
    /// Applies a write set (what a test harness does at commit).
    pub fn apply(&mut self, writes: &WriteSet) {
        for (k, v) in writes {
            match v {
                Some(v) => self.0.insert(k.clone(), v.clone()),
                None => self.0.remove(k),
            };
        }
    }
}

/// The block being executed, as modules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockInfo {
    /// Its height.
    pub height: u64,
    /// Its timestamp, ms since the Unix epoch.
    pub time_ms: u64,
    /// The proposer's account.
    pub proposer: AccountId,
    /// Validators this block convicts of equivocation, with the height of
    /// each offence (from the evidence in its header, checked by the
    /// consensus layer before execution; `staking` slashes them).
    pub slashed: Vec<(AccountId, u64)>,
}

/// The execution context of a hook or a call.
pub struct Ctx<'a> {
    state: &'a dyn StateRead,
    /// What was read from `state` (which does not change during a block):
    /// a key read again (a sender's balance, nonce, locks, by the checks,
    /// the fee and the call) is not looked up in the store again.
    read_cache: FastMap<Vec<u8>, Option<Vec<u8>>>,
    layers: Vec<WriteSet>,
    gas: Option<GasMeter>,
    events: Vec<Event>,
    /// Where the events of the running transaction or hook start.
    event_base: usize,
    /// The block being executed.
    pub block: BlockInfo,
    /// The signer of the transaction being executed (`None` in hooks).
    pub sender: Option<AccountId>,
    /// The signer's key (`None` in hooks).
    pub sender_key: Option<PublicKey>,
    /// The chain's native (fee) denomination.
    pub native_denom: String,
}

impl<'a> Ctx<'a> {
    /// A context over `state` for `block`, with no pending writes.
    pub fn new(state: &'a dyn StateRead, block: BlockInfo, native_denom: String) -> Self {
        Ctx {
            state,
            read_cache: FastMap::default(),
            layers: vec![WriteSet::new()],
            gas: None,
            events: Vec::new(),
            event_base: 0,
            block,
            sender: None,
            sender_key: None,
            native_denom,
        }
    }

    /// The value under `key`: pending writes first, then the state.
    pub fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let found = self.layers.iter().rev().find_map(|l| l.get(key).cloned());
        let value = match found {
            Some(v) => v,
            None => match self.read_cache.get(key) {
                Some(v) => v.clone(),
                None => {
                    let v = self.state.get(key)?;
                    self.read_cache.insert(key.to_vec(), v.clone());
                    v
                }
            },
        };
        self.charge_read(key.len() + value.as_ref().map_or(0, Vec::len))?;
        Ok(value)
    }

    /// Sets `key` to `value`.
    pub fn set(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        self.charge_write(key.len() + value.len())?;
        self.top().insert(key, Some(value));
        Ok(())
    }

    /// Deletes `key`.
    pub fn delete(&mut self, key: Vec<u8>) -> Result<()> {
        self.charge_write(key.len())?;
        self.top().insert(key, None);
        Ok(())
    }

    /// Records an event (kept only if the transaction succeeds).
    pub fn emit(&mut self, event: Event) -> Result<()> {
        event.check()?;
        if self.events.len() - self.event_base.min(self.events.len()) >= super::receipt::MAX_EVENTS {
            return Err(Error::Module {
                module: event.module,
                reason: format!("more than {} events", super::receipt::MAX_EVENTS),
            });
        }
        if let Some(g) = &mut self.gas {
            g.charge_event(event.size())?;
        }
        self.events.push(event);
        Ok(())
    }

    /// Charges `amount` gas (modules charge for work of their own).
    pub fn charge(&mut self, amount: u64) -> Result<()> {
        match &mut self.gas {
            Some(g) => g.charge(amount),
            None => Ok(()),
        }
    }

    fn charge_read(&mut self, bytes: usize) -> Result<()> {
        match &mut self.gas {
            Some(g) => g.charge_read(bytes),
            None => Ok(()),
        }
    }

    fn charge_write(&mut self, bytes: usize) -> Result<()> {
        match &mut self.gas {
            Some(g) => g.charge_write(bytes),
            None => Ok(()),
        }
    }

    fn top(&mut self) -> &mut WriteSet {
        // `layers` always holds the block layer.
        let last = self.layers.len() - 1;
        &mut self.layers[last]
    }

    /// Opens a transaction layer metered by `gas` and returns the number
    /// of events before it (to drop the transaction's own on failure).
    pub(crate) fn begin_tx(&mut self, sender: &PublicKey, gas: GasMeter) -> usize {
        self.layers.push(WriteSet::new());
        self.gas = Some(gas);
        self.sender = Some(sender.node_id().0);
        self.sender_key = Some(sender.clone());
        self.event_base = self.events.len();
        self.event_base
    }

    /// Closes the transaction layer: merged into the block's if `keep`,
    /// dropped (with the events it emitted) otherwise. Returns the gas
    /// used.
    pub(crate) fn end_tx(&mut self, keep: bool, events_before: usize) -> Result<u64> {
        let layer = match self.layers.len() {
            n if n >= 2 => self.layers.pop().unwrap_or_default(),
            _ => return Err(Error::Store("no transaction layer is open".into())),
        };
        if keep {
            self.top().extend(layer);
        } else {
            self.events.truncate(events_before);
        }
        self.sender = None;
        self.sender_key = None;
        Ok(self.gas.take().map_or(0, |g| g.used()))
    }

    /// Events emitted so far in this block.
    pub(crate) fn event_count(&self) -> usize {
        self.events.len()
    }

    /// The events emitted since `from`.
    pub(crate) fn events_since(&self, from: usize) -> Vec<Event> {
        self.events.get(from..).map(<[Event]>::to_vec).unwrap_or_default()
    }

    /// The block's writes (after the last transaction layer closed).
    pub(crate) fn into_writes(mut self) -> WriteSet {
        let mut all = WriteSet::new();
        for layer in self.layers.drain(..) {
            all.extend(layer);
        }
        all
    }

    /// Runs `f` in a layer of its own without gas, kept only if it
    /// succeeds (a hook that fails halfway leaves nothing).
    pub(crate) fn atomic<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        self.layers.push(WriteSet::new());
        let before = self.events.len();
        self.event_base = before;
        let out = f(self);
        let layer = self.layers.pop().unwrap_or_default();
        match out {
            Ok(v) => {
                self.top().extend(layer);
                Ok(v)
            }
            Err(e) => {
                self.events.truncate(before);
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod cached_read_tests {
    use std::cell::Cell;

    use super::*;

    struct Counting(MemState, Cell<usize>);

    impl StateRead for Counting {
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
            self.1.set(self.1.get() + 1);
            self.0.get(key)
        }
    }

    #[test]
    fn each_key_is_read_from_the_state_once() {
        let mut state = MemState::default();
        state.0.insert(b"a".to_vec(), b"1".to_vec());
        let counting = Counting(state, Cell::new(0));
        let cached = CachedRead::new(&counting);
        for _ in 0..3 {
            assert_eq!(cached.get(b"a").expect("read"), Some(b"1".to_vec()));
            assert_eq!(cached.get(b"missing").expect("read"), None);
        }
        assert_eq!(counting.1.get(), 2, "one read per key, absent ones too");
    }
}
