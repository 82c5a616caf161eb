//! The loop's signal handlers: a [`SignalPipe`] registered in the selector, and per signal the
//! callback to run on the loop's thread when its byte arrives.

use std::collections::HashMap;
use std::io;

use tulip_sys::signal::SignalPipe;
use tulip_sys::{Interest, Selector, Token};

use crate::event_loop::slot::{PersistentCallback, Slot};

/// Handlers by signal number; the pipe is created with the first handler.
#[derive(Default)]
pub(crate) struct SignalTable {
    pipe: Option<SignalPipe>,
    handlers: HashMap<i32, Slot>,
}

impl SignalTable {
    /// True if no handler is registered.
    pub(crate) fn is_empty(&self) -> bool {
        self.handlers.is_empty()
    }

    /// Register (or replace) the handler of `signum`, registering the pipe under `token` on
    /// first use. Returns a replaced callback, for the caller to drop outside any borrow.
    pub(crate) fn add(
        &mut self,
        selector: &mut dyn Selector,
        token: Token,
        signum: i32,
        slot: Slot,
    ) -> io::Result<Option<PersistentCallback>> {
        tulip_sys::signal::check_signal(signum)?;
        let pipe = match &mut self.pipe {
            Some(pipe) => pipe,
            None => {
                let pipe = SignalPipe::new()?;
                selector.register(pipe.fd(), Interest::READABLE, token)?;
                self.pipe.insert(pipe)
            }
        };
        pipe.subscribe(signum)?;
        let replaced = self.handlers.insert(signum, slot);
        Ok(replaced.and_then(Slot::into_callback))
    }

    /// Remove the handler of `signum` (restoring the signal's previous disposition if no other
    /// loop handles it). Returns whether there was one, and its callback unless it is running.
    pub(crate) fn remove(&mut self, signum: i32) -> (bool, Option<PersistentCallback>) {
        let Some(slot) = self.handlers.remove(&signum) else {
            return (false, None);
        };
        if let Some(pipe) = &mut self.pipe {
            pipe.unsubscribe(signum);
        }
        (true, slot.into_callback())
    }

    /// The handler slot of `signum`, if one is registered.
    pub(crate) fn slot(&mut self, signum: i32) -> Option<&mut Slot> {
        self.handlers.get_mut(&signum)
    }

    /// The signals received since the last call that have a handler: `on_signal(signum,
    /// handler generation, count)`, the count being how many times it arrived
    /// ([`SignalPipe::receive`]).
    pub(crate) fn receive(&self, mut on_signal: impl FnMut(i32, u64, u32)) -> io::Result<()> {
        let Some(pipe) = &self.pipe else {
            return Ok(());
        };
        pipe.receive(|signum, count| {
            if let Some(slot) = self.handlers.get(&signum) {
                on_signal(signum, slot.generation, count);
            }
        })
    }

    /// A new pipe, subscribed to every signal handled here and registered with `selector`
    /// under `token` (after `fork`: the inherited pipe is shared with the parent). `None` if
    /// there is no pipe yet.
    pub(crate) fn renew_pipe(
        &self,
        selector: &mut dyn Selector,
        token: Token,
    ) -> io::Result<Option<SignalPipe>> {
        if self.pipe.is_none() {
            return Ok(None);
        }
        let mut pipe = SignalPipe::new()?;
        for &signum in self.handlers.keys() {
            pipe.subscribe(signum)?;
        }
        selector.register(pipe.fd(), Interest::READABLE, token)?;
        Ok(Some(pipe))
    }

    /// Put `pipe` (from [`renew_pipe`](Self::renew_pipe)) in place; returns the old one, to
    /// drop (it unsubscribes itself and closes its fds, which leaves the parent's open).
    pub(crate) fn replace_pipe(&mut self, pipe: Option<SignalPipe>) -> Option<SignalPipe> {
        std::mem::replace(&mut self.pipe, pipe)
    }

    /// Unsubscribe everything and take the callbacks out (for `close`).
    pub(crate) fn drain(&mut self) -> Vec<PersistentCallback> {
        // Dropping the pipe unsubscribes it from every signal before closing it.
        self.pipe = None;
        self.handlers
            .drain()
            .filter_map(|(_, slot)| slot.into_callback())
            .collect()
    }
}
