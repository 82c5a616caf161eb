//! A persistent callback (reader, writer, signal handler) in its table, with the generation
//! that names this registration of it.

use crate::EventLoop;

/// A reader, writer or signal handler callback.
pub(crate) type PersistentCallback = Box<dyn FnMut(&EventLoop)>;

/// One registration of a persistent callback.
///
/// Every registration gets a new generation (the loop's counter never repeats), so a ready
/// entry collected for one registration cannot run the callback of the next, even if the fd
/// was closed and reused meanwhile. While the callback runs it is out of its slot (`None`), so
/// no borrow of the table is held and the callback may remove or replace itself.
pub(crate) struct Slot {
    pub(crate) generation: u64,
    callback: Option<PersistentCallback>,
}

impl Slot {
    pub(crate) fn new(generation: u64, callback: PersistentCallback) -> Slot {
        Slot {
            generation,
            callback: Some(callback),
        }
    }

    /// The callback, to run it, if this slot is still registration `generation`.
    pub(crate) fn take(&mut self, generation: u64) -> Option<PersistentCallback> {
        if self.generation == generation {
            self.callback.take()
        } else {
            None
        }
    }

    /// Put back a callback taken for `generation`. If the slot was re-registered meanwhile,
    /// the old callback is handed back for the caller to drop (outside any borrow).
    pub(crate) fn restore(
        &mut self,
        generation: u64,
        callback: PersistentCallback,
    ) -> Option<PersistentCallback> {
        if self.generation == generation && self.callback.is_none() {
            self.callback = Some(callback);
            None
        } else {
            Some(callback)
        }
    }

    /// The callback, for dropping it (`close`); `None` if it is running.
    pub(crate) fn into_callback(self) -> Option<PersistentCallback> {
        self.callback
    }
}
