//! Body framing: a strict, incremental chunked decoder (RFC 9112 §7.1).
//!
//! The proxy never forwards chunked bytes as received: it decodes them and writes a
//! canonical encoding (sizes in lower-case hex, no extensions, no trailers). Whatever
//! ambiguity a client hides in chunk syntax therefore never reaches the backend, and the
//! same holds for responses going to clients. For an HTTP/1.0 peer the data is written raw.
//!
//! Trailers are checked (field syntax, size limit) and dropped, in both directions: a
//! trailer field arrives after the head whose credentials and framing fields the proxy
//! stripped or replaced (`Authorization`, `Cookie: SESSION=...`, `Content-Length`), and
//! recipients that merge trailers into the head would take it back. Nothing the gateway
//! relays needs them; keeping response trailers would need the same vetting for no gain.

use super::is_tchar;

/// Longest chunk-size line (size plus extensions) we accept; extensions carry nothing we use.
const MAX_SIZE_LINE: usize = 4096;
/// At most 16 hex digits, so the size always fits in a u64.
const MAX_SIZE_DIGITS: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("malformed chunked body: {0}")]
    Malformed(&'static str),
    #[error("body larger than allowed")]
    TooLarge,
}

/// What the decoder writes to `out`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Canonical chunked encoding, without trailers.
    Chunked,
    /// Data bytes only (for HTTP/1.0 peers and bodies read whole).
    Raw,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hex digits of a chunk size.
    Size,
    /// After the digits: extensions until CR (where in one: `Ext`).
    Ext,
    /// CR of the size line seen, expecting LF.
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    TrailerLine,
    TrailerLf,
    EndLf,
    Done,
}

/// Where in the chunk extensions of a size line (RFC 9112 §7.1.1):
/// `*( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ext {
    /// After the size or a complete extension: BWS, `;` or the CR.
    Between,
    /// After `;`: BWS, then the name's first tchar.
    BeforeName,
    Name,
    /// BWS after a name: `=`, `;` or the CR.
    AfterName,
    /// After `=`: BWS, then a token or a quoted string.
    BeforeValue,
    Token,
    Quoted,
    /// After a backslash inside a quoted string.
    QuotedPair,
}

/// Incremental chunked decoder and re-encoder.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    output: Output,
    size: u64,
    digits: usize,
    ext: Ext,
    line_len: usize,
    remaining: u64,
    total: u64,
    /// 0 = unlimited.
    max_body: u64,
    trailer: Vec<u8>,
    max_trailer: usize,
}

/// Result of one `feed`: how much input was used and whether the body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub consumed: usize,
    pub done: bool,
}

impl ChunkedDecoder {
    pub fn new(output: Output, max_body: u64, max_trailer: usize) -> Self {
        ChunkedDecoder {
            state: State::Size,
            output,
            size: 0,
            digits: 0,
            ext: Ext::Between,
            line_len: 0,
            remaining: 0,
            total: 0,
            max_body,
            trailer: Vec::new(),
            max_trailer,
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decoded data bytes so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Bytes of trailer fields seen (CRLFs not counted), once the last chunk has been read;
    /// they count against the trailer limit, though none is written out.
    pub fn trailer_len(&self) -> usize {
        match self.state {
            State::TrailerStart
            | State::TrailerLine
            | State::TrailerLf
            | State::EndLf
            | State::Done => self.line_len,
            _ => 0,
        }
    }

    /// Consumes as much of `input` as belongs to this body, appending the re-encoded form to
    /// `out`. Stops right after the body's last byte, so pipelined bytes stay unconsumed.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<Progress, BodyError> {
        let mut i = 0;
        while i < input.len() {
            if self.state == State::Data {
                i += self.data(&input[i..], out);
                continue;
            }
            match self.byte(input[i], out)? {
                Step::Next => i += 1,
                Step::Again => {}
                Step::End => {
                    return Ok(Progress {
                        consumed: i + 1,
                        done: true,
                    })
                }
                Step::Stop => {
                    return Ok(Progress {
                        consumed: i,
                        done: true,
                    })
                }
            }
        }
        Ok(Progress {
            consumed: i,
            done: self.state == State::Done,
        })
    }

    /// Chunk data: as much of `input` as the chunk still has; returns how much that was.
    fn data(&mut self, input: &[u8], out: &mut Vec<u8>) -> usize {
        let take = (input.len() as u64).min(self.remaining) as usize;
        let data = &input[..take];
        if self.output == Output::Chunked {
            write_hex(out, take as u64);
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(data);
            out.extend_from_slice(b"\r\n");
        } else {
            out.extend_from_slice(data);
        }
        self.remaining -= take as u64;
        if self.remaining == 0 {
            self.state = State::DataCr;
        }
        take
    }

    /// One byte outside chunk data.
    fn byte(&mut self, b: u8, out: &mut Vec<u8>) -> Result<Step, BodyError> {
        match self.state {
            State::Size | State::Ext | State::SizeLf => self.size_line(b, out),
            State::DataCr if b == b'\r' => {
                self.state = State::DataLf;
                Ok(Step::Next)
            }
            State::DataLf if b == b'\n' => {
                self.state = State::Size;
                Ok(Step::Next)
            }
            State::DataCr | State::DataLf => {
                Err(BodyError::Malformed("chunk data not followed by CRLF"))
            }
            State::TrailerStart | State::TrailerLine | State::TrailerLf | State::EndLf => {
                self.trailer_byte(b, out)
            }
            State::Data => unreachable!("chunk data is taken whole by `data`"),
            State::Done => Ok(Step::Stop),
        }
    }

    /// The chunk-size line: hex digits, extensions skipped, CRLF.
    fn size_line(&mut self, b: u8, out: &mut Vec<u8>) -> Result<Step, BodyError> {
        match self.state {
            State::Size => {
                if let Some(d) = hex_value(b) {
                    if self.digits == MAX_SIZE_DIGITS {
                        return Err(BodyError::Malformed("chunk size too large"));
                    }
                    self.size = (self.size << 4) | u64::from(d);
                    self.digits += 1;
                } else if self.digits == 0 {
                    return Err(BodyError::Malformed(
                        "chunk size must start with a hex digit",
                    ));
                } else {
                    self.state = State::Ext;
                    return Ok(Step::Again);
                }
                self.line_len += 1;
            }
            State::Ext => {
                self.line_len += 1;
                if self.line_len > MAX_SIZE_LINE {
                    return Err(BodyError::Malformed("chunk size line too long"));
                }
                if self.extension(b)? {
                    self.state = State::SizeLf;
                }
            }
            _ => {
                if b != b'\n' {
                    return Err(BodyError::Malformed("bare CR in chunk size line"));
                }
                self.size_line_done(out)?;
            }
        }
        Ok(Step::Next)
    }

    /// One byte of the extensions, which are checked and skipped; `true` for the CR that
    /// ends the line. Parsers that skip extensions less strictly than we do disagree on where
    /// the line ends: a bare LF or NUL, or a quoted string still open at the CR (whose CRLF
    /// a quote-aware parser reads as string content) is refused.
    fn extension(&mut self, b: u8) -> Result<bool, BodyError> {
        let bws = matches!(b, b' ' | b'\t');
        self.ext = match (self.ext, b) {
            (Ext::Quoted, b'"') => Ext::Between,
            (Ext::Quoted, b'\\') => Ext::QuotedPair,
            (Ext::Quoted | Ext::QuotedPair, b'\r') => {
                return Err(BodyError::Malformed(
                    "unterminated quoted string in chunk extension",
                ))
            }
            (Ext::Quoted | Ext::QuotedPair, _) if is_qdtext(b) || b == b'"' || b == b'\\' => {
                Ext::Quoted
            }
            (Ext::Quoted | Ext::QuotedPair, _) => {
                return Err(BodyError::Malformed("bad quoted string in chunk extension"))
            }
            (Ext::Between | Ext::Name | Ext::AfterName | Ext::Token, b'\r') => return Ok(true),
            (Ext::Between | Ext::Name | Ext::AfterName | Ext::Token, b';') => Ext::BeforeName,
            (Ext::Name | Ext::AfterName, b'=') => Ext::BeforeValue,
            (Ext::Name, _) if is_tchar(b) => Ext::Name,
            (Ext::Token, _) if is_tchar(b) => Ext::Token,
            (Ext::Name | Ext::AfterName, _) if bws => Ext::AfterName,
            (Ext::Between | Ext::Token, _) if bws => Ext::Between,
            (Ext::BeforeName | Ext::BeforeValue, _) if bws => self.ext,
            (Ext::BeforeName, _) if is_tchar(b) => Ext::Name,
            (Ext::BeforeValue, b'"') => Ext::Quoted,
            (Ext::BeforeValue, _) if is_tchar(b) => Ext::Token,
            _ => return Err(BodyError::Malformed("bad chunk extension")),
        };
        Ok(false)
    }

    /// A complete size line: the last chunk starts the trailers, any other its data.
    fn size_line_done(&mut self, out: &mut Vec<u8>) -> Result<(), BodyError> {
        self.line_len = 0;
        self.digits = 0;
        self.ext = Ext::Between;
        let size = std::mem::take(&mut self.size);
        if size == 0 {
            self.state = State::TrailerStart;
            if self.output == Output::Chunked {
                out.extend_from_slice(b"0\r\n");
            }
            return Ok(());
        }
        self.total = self.total.saturating_add(size);
        if self.max_body != 0 && self.total > self.max_body {
            return Err(BodyError::TooLarge);
        }
        self.remaining = size;
        self.state = State::Data;
        Ok(())
    }

    /// The trailer section after the last chunk, and the final CRLF.
    fn trailer_byte(&mut self, b: u8, out: &mut Vec<u8>) -> Result<Step, BodyError> {
        match self.state {
            State::TrailerStart => match b {
                b'\r' => self.state = State::EndLf,
                b' ' | b'\t' => return Err(BodyError::Malformed("obs-fold in trailer")),
                _ => {
                    self.trailer.clear();
                    self.state = State::TrailerLine;
                    return Ok(Step::Again);
                }
            },
            State::TrailerLine => {
                if b == b'\r' {
                    self.state = State::TrailerLf;
                } else {
                    if b == b'\n' || b == 0 {
                        return Err(BodyError::Malformed("bad byte in trailer"));
                    }
                    self.line_len += 1;
                    if self.line_len > self.max_trailer {
                        return Err(BodyError::Malformed("trailer section too large"));
                    }
                    self.trailer.push(b);
                }
            }
            State::TrailerLf => {
                if b != b'\n' {
                    return Err(BodyError::Malformed("bare CR in trailer"));
                }
                // Checked, then dropped (see the module's comment).
                check_trailer_field(&self.trailer)?;
                self.state = State::TrailerStart;
            }
            _ => {
                if b != b'\n' {
                    return Err(BodyError::Malformed("bare CR after trailers"));
                }
                if self.output == Output::Chunked {
                    out.extend_from_slice(b"\r\n");
                }
                self.state = State::Done;
                return Ok(Step::End);
            }
        }
        Ok(Step::Next)
    }
}

/// What `ChunkedDecoder::byte` did with its byte.
enum Step {
    /// Used it: go on with the next.
    Next,
    /// Changed state without using it: read it again.
    Again,
    /// Used it, and it ended the body.
    End,
    /// The body had already ended: the byte is not ours.
    Stop,
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Appends `n` in lower-case hex without allocating.
pub fn write_hex(out: &mut Vec<u8>, n: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut tmp = [0u8; 16];
    let mut i = tmp.len();
    let mut v = n;
    loop {
        i -= 1;
        tmp[i] = DIGITS[(v & 15) as usize];
        v >>= 4;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&tmp[i..]);
}

/// qdtext (RFC 9110 §5.6.4): HTAB, SP, visible ASCII but `"` and `\\`, obs-text. Inside a
/// quoted-pair, `"` and `\\` are allowed too (the caller adds them).
fn is_qdtext(b: u8) -> bool {
    matches!(b, b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff)
}

/// A trailer line is a field line: token ":" OWS value OWS, value without controls.
fn check_trailer_field(line: &[u8]) -> Result<(), BodyError> {
    let colon = memchr::memchr(b':', line).ok_or(BodyError::Malformed("trailer without colon"))?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err(BodyError::Malformed("bad trailer name"));
    }
    if value.iter().any(|&b| b < 0x20 && b != b'\t' || b == 0x7f) {
        return Err(BodyError::Malformed("bad trailer value"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(input: &[u8], output: Output) -> Result<(Vec<u8>, usize), BodyError> {
        let mut d = ChunkedDecoder::new(output, 0, 8192);
        let mut out = Vec::new();
        let p = d.feed(input, &mut out)?;
        assert!(p.done, "not done");
        Ok((out, p.consumed))
    }

    #[test]
    fn reencodes_canonically() {
        let (out, used) = decode(
            b"5;ext=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\nGET",
            Output::Chunked,
        )
        .unwrap();
        // Extensions and trailers are not written out.
        assert_eq!(out, b"5\r\nhello\r\n0\r\n\r\n");
        assert_eq!(used, b"5;ext=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n".len());
        let (raw, _) = decode(b"A\r\n0123456789\r\n0\r\n\r\n", Output::Raw).unwrap();
        assert_eq!(raw, b"0123456789");
    }

    #[test]
    fn byte_by_byte_equals_whole() {
        let input = b"3\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nA: b\r\n\r\n";
        let (whole, _) = decode(input, Output::Raw).unwrap();
        let mut d = ChunkedDecoder::new(Output::Raw, 0, 8192);
        let mut out = Vec::new();
        for (n, b) in input.iter().enumerate() {
            let p = d.feed(std::slice::from_ref(b), &mut out).unwrap();
            assert_eq!(p.done, n == input.len() - 1);
        }
        assert_eq!(out, whole);
    }

    #[test]
    fn refusals() {
        let bad: &[&[u8]] = &[
            b"zz\r\n",
            b"0x10\r\n",
            b" 5\r\nhello\r\n0\r\n\r\n",
            b"11111111111111111\r\n",
            b"5\r\nhelloX\r\n",
            b"5\nhello\r\n",
            b"5;a\nb\r\nhello\r\n",
            b"5;a\rb\r\nhello\r\n",
            b"-5\r\n",
            b"5 5\r\n",
            b"0\r\nbad trailer\r\n\r\n",
            b"0\r\n folded: x\r\n\r\n",
            b"0\r\nA: b\rc\r\n\r\n",
            // Quoted strings that do not close before the CRLF, or are not where a value is.
            b"5;a=\"x\r\nhello\r\n0\r\n\r\n",
            b"5;a=\"x;b=1\r\nhello\r\n0\r\n\r\n",
            b"5;a=\"x\\\"\r\nhello\r\n0\r\n\r\n",
            b"5;a=\"x\\\r\nhello\r\n0\r\n\r\n",
            b"0;a=\"\r\n\r\n",
            b"5;\"a\"\r\nhello\r\n0\r\n\r\n",
            b"5;a=\"x\"y\r\nhello\r\n0\r\n\r\n",
            b"5;a=\"\x01\"\r\nhello\r\n0\r\n\r\n",
            // Other extension syntax errors: no name, no value, a space inside, obs-text
            // outside quotes.
            b"5;\r\nhello\r\n0\r\n\r\n",
            b"5;a=\r\nhello\r\n0\r\n\r\n",
            b"5;a b\r\nhello\r\n0\r\n\r\n",
            b"5;a=b c\r\nhello\r\n0\r\n\r\n",
            b"5;a=\xc3\xa9\r\nhello\r\n0\r\n\r\n",
            b"5;a==b\r\nhello\r\n0\r\n\r\n",
        ];
        for raw in bad {
            let mut d = ChunkedDecoder::new(Output::Chunked, 0, 8192);
            let r = d.feed(raw, &mut Vec::new());
            assert!(r.is_err(), "accepted {:?}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn well_formed_extensions() {
        for ext in [
            &b";a"[..],
            b";a=1",
            b" ; a = 1 ;b",
            b";a=\"\"",
            b";a=\"x;y=\\\"z\\\"\\\\ \t\xc3\xa9\"",
            b";a=\"x\" ;b=tok",
            b"\t;a\t=\t\"q\"\t",
        ] {
            let body = [b"5", ext, b"\r\nhello\r\n0", ext, b"\r\n\r\n"].concat();
            let (out, used) = decode(&body, Output::Chunked)
                .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(ext)));
            assert_eq!(out, b"5\r\nhello\r\n0\r\n\r\n");
            assert_eq!(used, body.len());
        }
    }

    #[test]
    fn trailers_are_checked_and_dropped() {
        let body = b"3\r\nabc\r\n0\r\nAuthorization: Bearer x\r\nCookie: SESSION=y\r\n\r\n";
        let mut d = ChunkedDecoder::new(Output::Chunked, 0, 8192);
        let mut out = Vec::new();
        let p = d.feed(body, &mut out).unwrap();
        assert_eq!((p.consumed, p.done), (body.len(), true));
        assert_eq!(out, b"3\r\nabc\r\n0\r\n\r\n");
        assert_eq!(
            d.trailer_len(),
            "Authorization: Bearer xCookie: SESSION=y".len()
        );
        // Dropped, yet still limited.
        let mut d = ChunkedDecoder::new(Output::Chunked, 0, 16);
        assert!(d.feed(body, &mut Vec::new()).is_err());
    }

    #[test]
    fn body_limit() {
        let mut d = ChunkedDecoder::new(Output::Raw, 4, 8192);
        assert_eq!(
            d.feed(b"5\r\nhello\r\n", &mut Vec::new()),
            Err(BodyError::TooLarge)
        );
    }

    #[test]
    fn hex() {
        for n in [0u64, 1, 15, 16, 255, 4096, u64::MAX] {
            let mut v = Vec::new();
            write_hex(&mut v, n);
            assert_eq!(String::from_utf8(v).unwrap(), format!("{n:x}"));
        }
    }
}
