//! The message body on its way in: finding the end of DATA and handing the bytes to
//! [`Incoming`], which applies the message policy. No I/O here; `session::transfer`
//! feeds it.

use mailfwd_domain::ingest::Incoming;
use mailfwd_domain::{IngestError, ReceivedEmail};
use smtp_proto::request::receiver::DataReceiver;

/// The only sequence that ends DATA.
const TERMINATOR: [u8; 5] = *b"\r\n.\r\n";

/// Finds the end of DATA and undoes dot-stuffing, on smtp-proto's [`DataReceiver`].
///
/// Two things are added to the receiver. It is primed with the CRLF that ended the
/// DATA command, so that a first line of `.` ends an empty message and a first line of
/// `..x` is unstuffed. And its end is accepted only when the raw bytes were exactly
/// CRLF "." CRLF: the receiver also stops at CRLF "." CR CR… LF, which a sender that
/// passes bare CRs through would not see as an end (an SMTP smuggling vector). At such
/// a false end the message is refused for its bare CR (the domain's policy) and reading
/// goes on.
pub(crate) struct DotReader {
    receiver: DataReceiver,
    /// The last raw bytes consumed.
    recent: [u8; 5],
    /// Unstuffed bytes not yet handed out.
    out: Vec<u8>,
    false_end: bool,
}

fn primed_receiver() -> DataReceiver {
    let mut receiver = DataReceiver::new();
    receiver.ingest(&mut b"\r\n".iter(), &mut Vec::new());
    receiver
}

impl DotReader {
    pub(crate) fn new() -> Self {
        DotReader {
            receiver: primed_receiver(),
            recent: [0, 0, 0, b'\r', b'\n'],
            out: Vec::new(),
            false_end: false,
        }
    }

    /// Reads raw input; returns how many bytes it consumed and whether they ended DATA.
    pub(crate) fn feed(&mut self, input: &[u8]) -> (usize, bool) {
        let mut bytes = input.iter();
        let ended = self.receiver.ingest(&mut bytes, &mut self.out);
        let consumed = input.len() - bytes.as_slice().len();
        self.remember(&input[..consumed]);
        if ended && self.recent != TERMINATOR {
            // The receiver's state after a false end is "just saw CRLF", which a primed
            // receiver has too.
            self.false_end = true;
            self.receiver = primed_receiver();
            return (consumed, false);
        }
        (consumed, ended)
    }

    /// Whether a false end (CRLF "." CR CR… LF) was seen since the last call.
    pub(crate) fn take_false_end(&mut self) -> bool {
        std::mem::take(&mut self.false_end)
    }

    /// The unstuffed bytes that may be stored now. Until the end, the last byte is held
    /// back: when the terminator's LF arrives the receiver takes back the CR before it,
    /// which it can only do while the CR is still in its buffer.
    pub(crate) fn ready(&self, ended: bool) -> &[u8] {
        let hold = usize::from(!ended);
        &self.out[..self.out.len().saturating_sub(hold)]
    }

    /// Forgets the bytes [`DotReader::ready`] returned.
    pub(crate) fn release(&mut self, ended: bool) {
        let count = self.ready(ended).len();
        self.out.drain(..count);
    }

    fn remember(&mut self, bytes: &[u8]) {
        let keep = bytes.len().min(self.recent.len());
        self.recent.rotate_left(keep);
        let start = self.recent.len() - keep;
        self.recent[start..].copy_from_slice(&bytes[bytes.len() - keep..]);
    }
}

enum State {
    Receiving(Box<Incoming>),
    /// The partial email was aborted; the rest of the input is read and thrown away.
    Failed(IngestError),
}

/// A body being received: written chunk by chunk, committed at the end. After the
/// first refusal it remembers why and throws the rest away, so the reply can come when
/// the client has finished sending.
pub(crate) struct Body {
    state: State,
}

impl Body {
    pub(crate) fn new(incoming: Incoming) -> Self {
        Body {
            state: State::Receiving(Box::new(incoming)),
        }
    }

    pub(crate) fn has_failed(&self) -> bool {
        matches!(self.state, State::Failed(_))
    }

    /// Stores the next chunk; after a failure, throws it away.
    pub(crate) async fn write(&mut self, chunk: &[u8]) {
        if chunk.is_empty() {
            return;
        }
        let State::Receiving(incoming) = &mut self.state else {
            return;
        };
        if let Err(error) = incoming.write(chunk).await {
            self.fail(error).await;
        }
    }

    /// Refuses the body for a bare CR that the framing consumed (a false end of DATA).
    pub(crate) async fn reject_false_end(&mut self) {
        if let State::Receiving(incoming) = &self.state {
            let error = incoming.bare_cr_in_framing();
            self.fail(error).await;
        }
    }

    /// Commits the email, unless the body failed along the way.
    pub(crate) async fn finish(self) -> Result<ReceivedEmail, IngestError> {
        match self.state {
            State::Receiving(incoming) => (*incoming).commit().await,
            State::Failed(error) => Err(error),
        }
    }

    /// Throws the partial email away.
    pub(crate) async fn abort(self) {
        if let State::Receiving(incoming) = self.state {
            (*incoming).abort().await;
        }
    }

    async fn fail(&mut self, error: IngestError) {
        if let State::Receiving(incoming) = std::mem::replace(&mut self.state, State::Failed(error))
        {
            (*incoming).abort().await;
        }
    }
}

#[cfg(test)]
#[path = "data_tests.rs"]
mod tests;
