//! The protocol between a connection and its streams (asyncio's `StreamReaderProtocol`):
//! it feeds the reader, tells the writer about flow control and the end, and for a server,
//! starts the client's task once connected.

use std::io;
use std::rc::Rc;

use super::reader::Incoming;
use super::writer::Flow;
use super::{StreamReader, StreamWriter};
use crate::{Protocol, Transport};

/// What a server does with a new connection's streams: start its `client_connected` task.
pub(super) type OnConnected = Box<dyn FnOnce(StreamReader, StreamWriter)>;

pub(super) struct StreamProtocol {
    incoming: Rc<Incoming>,
    flow: Rc<Flow>,
    on_connected: Option<OnConnected>,
}

impl StreamProtocol {
    pub(super) fn new(limit: usize, on_connected: Option<OnConnected>) -> StreamProtocol {
        StreamProtocol {
            incoming: Rc::new(Incoming::new(limit)),
            flow: Rc::new(Flow::default()),
            on_connected,
        }
    }

    /// The reader of this connection alone (a read pipe has no writer).
    pub(super) fn reader(&self) -> StreamReader {
        StreamReader::from_incoming(Rc::clone(&self.incoming))
    }

    /// The reader and the writer of this connection.
    pub(super) fn streams(&self, transport: Transport) -> (StreamReader, StreamWriter) {
        let reader = StreamReader::from_incoming(Rc::clone(&self.incoming));
        let writer = StreamWriter::new(transport, Rc::clone(&self.flow), Rc::clone(&self.incoming));
        (reader, writer)
    }
}

impl Protocol for StreamProtocol {
    fn connection_made(&mut self, transport: Transport) {
        *self.incoming.transport.borrow_mut() = Some(transport.clone());
        if let Some(on_connected) = self.on_connected.take() {
            let (reader, writer) = self.streams(transport);
            on_connected(reader, writer);
        }
    }

    fn data_received(&mut self, data: &[u8]) {
        self.incoming.feed_data(data);
    }

    /// The reader sees the end of stream after its buffered bytes; the connection stays open
    /// for writing until the writer closes it (asyncio's stream protocol keeps it half-open
    /// too).
    fn eof_received(&mut self) -> bool {
        self.incoming.feed_eof();
        true
    }

    fn connection_lost(&mut self, error: Option<io::Error>) {
        self.flow.connection_lost(error.as_ref());
        match error {
            Some(error) => self.incoming.set_exception(error),
            None => self.incoming.feed_eof(),
        }
        self.incoming.transport.borrow_mut().take();
        self.on_connected = None;
    }

    fn pause_writing(&mut self) {
        self.flow.pause_writing();
    }

    fn resume_writing(&mut self) {
        self.flow.resume_writing();
    }
}
