//! Numbers in command lines, read exactly, before smtp-proto parses the line.
//!
//! smtp-proto's number parsing saturates, and then starts again from the next digit:
//! `BDAT 99999999999999999999022 LAST` reads as a 22-octet chunk, so the rest of the
//! chunk would run as commands (a forged second transaction), and
//! `SIZE=1000000000000000000005` reads as 5 and passes the size check. Here a number
//! that does not fit its type is an error, never another number (ADR 0010).

/// A number in a command line that cannot be read exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NumberError {
    /// The BDAT chunk size is not a decimal number of octets that fits in 64 bits: the
    /// chunk that follows cannot be found, so the session cannot go on.
    ChunkSize,
    /// A numeric MAIL or RCPT parameter (its name) is not a number that fits.
    Parameter(&'static str),
}

/// Parameters whose values smtp-proto reads as numbers.
const NUMERIC_PARAMETERS: [&str; 5] = ["SIZE", "HOLDFOR", "HOLDUNTIL", "BY", "MT-PRIORITY"];

/// Checks every number smtp-proto would read in `line` (a command line, CRLF included
/// or not).
///
/// # Errors
/// [`NumberError`] for the first number that does not fit.
pub(crate) fn check(line: &[u8]) -> Result<(), NumberError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    // Read the line as leniently as smtp-proto does: it skips leading blanks and CRs
    // inside the command word, and splits on any white space. A check that split
    // otherwise would see another verb than smtp-proto, and `BDAT\t999…` would pass.
    let lenient: Vec<u8> = line.iter().copied().filter(|&b| b != b'\r').collect();
    let lenient = lenient.trim_ascii_start();
    let verb_end = lenient
        .iter()
        .position(u8::is_ascii_whitespace)
        .unwrap_or(lenient.len());
    let (verb, rest) = lenient.split_at(verb_end);
    if verb.eq_ignore_ascii_case(b"BDAT") {
        // A stray CR or a leading blank is no valid command either: when the line is a
        // BDAT, its chunk cannot be trusted to be where either reading puts it.
        let clean = !line.contains(&b'\r') && !line.first().is_some_and(u8::is_ascii_whitespace);
        let size = rest
            .split(u8::is_ascii_whitespace)
            .find(|token| !token.is_empty());
        return match size.and_then(unsigned) {
            Some(_) if clean => Ok(()),
            _ => Err(NumberError::ChunkSize),
        };
    }
    if verb.eq_ignore_ascii_case(b"MAIL") || verb.eq_ignore_ascii_case(b"RCPT") {
        return check_parameters(after_path(rest));
    }
    Ok(())
}

fn check_parameters(parameters: &[u8]) -> Result<(), NumberError> {
    for parameter in parameters.split(u8::is_ascii_whitespace) {
        let Some(equals) = parameter.iter().position(|&b| b == b'=') else {
            continue;
        };
        let (key, value) = (&parameter[..equals], &parameter[equals + 1..]);
        let Some(name) = NUMERIC_PARAMETERS
            .into_iter()
            .find(|name| key.eq_ignore_ascii_case(name.as_bytes()))
        else {
            continue;
        };
        let fits = match name {
            // BY=<seconds>;<mode> and MT-PRIORITY=<-9..9> are signed.
            "BY" | "MT-PRIORITY" => signed_prefix(value),
            _ => unsigned(value).is_some(),
        };
        if !fits {
            return Err(NumberError::Parameter(name));
        }
    }
    Ok(())
}

/// The parameters after `FROM:<path>` or `TO:<path>`; the path may hold a quoted local
/// part with spaces or `>` in it.
fn after_path(rest: &[u8]) -> &[u8] {
    let Some(open) = rest.iter().position(|&b| b == b'<') else {
        return &[];
    };
    let (mut quoted, mut escaped) = (false, false);
    for (i, &byte) in rest.iter().enumerate().skip(open + 1) {
        match byte {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b'>' if !quoted => return &rest[i + 1..],
            _ => {}
        }
    }
    &[]
}

/// `1*DIGIT` that fits in a `usize` (smtp-proto's type for sizes) below `usize::MAX`,
/// which smtp-proto takes for "no number".
fn unsigned(text: &[u8]) -> Option<u64> {
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let value = std::str::from_utf8(text).ok()?.parse::<u64>().ok()?;
    usize::try_from(value)
        .ok()
        .filter(|&size| size < usize::MAX)
        .map(|_| value)
}

/// An optional `-` and the digits after it (up to the first non-digit) fit in an `i64`.
fn signed_prefix(text: &[u8]) -> bool {
    let digits_from = usize::from(text.first() == Some(&b'-'));
    let digits = text[digits_from..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let number = &text[..digits_from + digits];
    digits == 0
        || std::str::from_utf8(number)
            .ok()
            .and_then(|n| n.parse::<i64>().ok())
            .is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes_are_read_exactly() {
        for line in [
            "BDAT 0",
            "BDAT 22 LAST\r\n",
            "bdat   1000",
            "BDAT 18446744073709551614",
            "BDAT\t5 LAST",
        ] {
            assert_eq!(check(line.as_bytes()), Ok(()), "{line}");
        }
        for line in [
            "BDAT 99999999999999999999022 LAST",
            "BDAT 18446744073709551616",
            "BDAT 18446744073709551615",
            "BDAT\t99999999999999999999022 LAST",
            " BDAT 99999999999999999999022 LAST",
            "B\rDAT 99999999999999999999022 LAST",
            "BDAT 22\r LAST",
            "BDAT lots",
            "BDAT -1",
            "BDAT +5",
            "BDAT",
            "BDAT 1e3 LAST",
        ] {
            assert_eq!(
                check(line.as_bytes()),
                Err(NumberError::ChunkSize),
                "{line}"
            );
        }
    }

    #[test]
    fn numeric_parameters_that_do_not_fit_are_errors() {
        for line in [
            "MAIL FROM:<a@b.test> SIZE=1000",
            "MAIL FROM:<> SIZE=0 BODY=8BITMIME",
            "RCPT TO:<99999999999999999999999@b.test>",
            "MAIL FROM:<\"x> SIZE=99999999999999999999999\"@b.test> SIZE=5",
            "MAIL FROM:<a@b.test> BY=-60;R MT-PRIORITY=-3",
            "EHLO 99999999999999999999999",
        ] {
            assert_eq!(check(line.as_bytes()), Ok(()), "{line}");
        }
        let size = Err(NumberError::Parameter("SIZE"));
        assert_eq!(
            check(b"MAIL FROM:<a@b.test> SIZE=1000000000000000000005"),
            size
        );
        assert_eq!(
            check(b"mail from:<a@b.test> size=18446744073709551616"),
            size
        );
        assert_eq!(check(b"MAIL FROM:<a@b.test> SIZE=lots"), size);
        assert_eq!(
            check(b" MAIL FROM:<a@b.test>\tSIZE=1000000000000000000005"),
            size
        );
        assert_eq!(
            check(b"MAIL FROM:<a@b.test> HOLDFOR=99999999999999999999"),
            Err(NumberError::Parameter("HOLDFOR"))
        );
        assert_eq!(
            check(b"MAIL FROM:<a@b.test> BY=99999999999999999999;R"),
            Err(NumberError::Parameter("BY"))
        );
    }
}
