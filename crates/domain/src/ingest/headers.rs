//! Counting `Received:` headers as the body streams past, to stop mail loops.

use super::IngestError;

const RECEIVED: &[u8] = b"received:";

/// Watches the header section (up to the first empty line) chunk by chunk.
#[derive(Debug)]
pub struct ReceivedCounter {
    max: usize,
    count: usize,
    in_headers: bool,
    line_len: usize,
    prefix: [u8; RECEIVED.len()],
}

impl ReceivedCounter {
    /// A counter that fails past `max` headers.
    pub fn new(max: usize) -> Self {
        ReceivedCounter {
            max,
            count: 0,
            in_headers: true,
            line_len: 0,
            prefix: [0; RECEIVED.len()],
        }
    }

    /// Scans the next chunk of the message.
    ///
    /// # Errors
    /// [`IngestError::MailLoop`] once more than `max` headers were seen.
    pub fn scan(&mut self, chunk: &[u8]) -> Result<(), IngestError> {
        for &byte in chunk {
            if !self.in_headers {
                return Ok(());
            }
            match byte {
                b'\r' => {}
                b'\n' => {
                    if self.line_len == 0 {
                        self.in_headers = false;
                    } else if self.line_len >= RECEIVED.len() && self.prefix == *RECEIVED {
                        self.count += 1;
                        if self.count > self.max {
                            return Err(IngestError::MailLoop(self.max));
                        }
                    }
                    self.line_len = 0;
                }
                other => {
                    if let Some(slot) = self.prefix.get_mut(self.line_len) {
                        *slot = other.to_ascii_lowercase();
                    }
                    self.line_len += 1;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(message: &[u8], chunk: usize, max: usize) -> Result<usize, IngestError> {
        let mut counter = ReceivedCounter::new(max);
        for piece in message.chunks(chunk) {
            counter.scan(piece)?;
        }
        Ok(counter.count)
    }

    #[test]
    fn counts_headers_across_chunks_and_stops_at_the_body() {
        let message = b"Received: from a\r\n by b\r\nRECEIVED: from c\r\nSubject: x\r\n\r\nReceived: in the body\r\n";
        for chunk in [1, 3, 7, message.len()] {
            assert_eq!(
                count(message, chunk, 50).ok(),
                Some(2),
                "chunk size {chunk}"
            );
        }
    }

    #[test]
    fn too_many_is_a_loop() {
        let message = b"Received: x\r\n".repeat(51);
        assert!(matches!(
            count(&message, 5, 50),
            Err(IngestError::MailLoop(50))
        ));
        assert_eq!(count(&b"Received: x\r\n".repeat(50), 5, 50).ok(), Some(50));
    }
}
