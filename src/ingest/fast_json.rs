//! A fast path for the common shape of JSON point messages.
//!
//! It scans `{"metric": "...", "ts": <int | "RFC 3339">, "value": <number | "NaN">,
//! "tags": {"k": "v", ...}}` objects (one, an array of them, or several separated by
//! whitespace) byte by byte, with no escapes in strings and no unknown keys. Anything else
//! — escapes, other keys, other value types, malformed input — makes it give up
//! ([`Bail`]) before it has emitted a point, and the message is decoded by the general
//! serde path instead, which also produces the error messages. Whatever the fast path
//! accepts, the serde path decodes to the same points (the tests check both on the same
//! inputs), so which path ran is invisible.

use smallvec::SmallVec;

use crate::store::segment::PointColumns;
use crate::store::series::{sort_tags, SeriesLimits, SeriesRegistry};

/// The fast path declined the message; use the general decoder.
#[derive(Debug)]
pub struct Bail;

struct Point<'a> {
    metric: &'a str,
    ts: i64,
    value: f64,
    tags: SmallVec<[(&'a str, &'a str); 12]>,
}

struct Scanner<'a> {
    s: &'a [u8],
    text: &'a str,
    i: usize,
}

impl<'a> Scanner<'a> {
    #[inline]
    fn ws(&mut self) {
        while let Some(&c) = self.s.get(self.i) {
            if c == b' ' || c == b'\n' || c == b'\t' || c == b'\r' {
                self.i += 1;
            } else {
                break;
            }
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    #[inline]
    fn eat(&mut self, c: u8) -> Result<(), Bail> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(Bail)
        }
    }

    /// A string without escapes or control characters.
    #[inline]
    fn string(&mut self) -> Result<&'a str, Bail> {
        self.eat(b'"')?;
        let start = self.i;
        let end = start + memchr::memchr2(b'"', b'\\', &self.s[start..]).ok_or(Bail)?;
        if self.s[end] == b'\\' || self.s[start..end].iter().any(|&c| c < 0x20) {
            return Err(Bail);
        }
        self.i = end + 1;
        // the whole payload is valid UTF-8 and quotes are ASCII: this is a char boundary
        Ok(&self.text[start..end])
    }

    /// A JSON number token, as text.
    fn number(&mut self) -> Result<(&'a str, bool), Bail> {
        let start = self.i;
        let mut integral = true;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        let digits = |sc: &mut Scanner<'_>| {
            let d0 = sc.i;
            while sc.peek().is_some_and(|c| c.is_ascii_digit()) {
                sc.i += 1;
            }
            sc.i > d0
        };
        if self.peek() == Some(b'0') {
            self.i += 1;
        } else if !digits(self) {
            return Err(Bail);
        }
        if self.peek() == Some(b'.') {
            integral = false;
            self.i += 1;
            if !digits(self) {
                return Err(Bail);
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            integral = false;
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if !digits(self) {
                return Err(Bail);
            }
        }
        Ok((&self.text[start..self.i], integral))
    }

    /// After a member of an object: `,` (another follows: `false`) or `}` (it ends: `true`).
    fn object_ends(&mut self) -> Result<bool, Bail> {
        self.ws();
        match self.peek() {
            Some(b',') => {
                self.i += 1;
                Ok(false)
            }
            Some(b'}') => {
                self.i += 1;
                Ok(true)
            }
            _ => Err(Bail),
        }
    }

    fn point(&mut self) -> Result<Point<'a>, Bail> {
        self.eat(b'{')?;
        let (mut metric, mut ts, mut value) = (None, None, None);
        let mut tags = SmallVec::new();
        self.ws();
        if self.peek() == Some(b'}') {
            return Err(Bail);
        }
        loop {
            self.ws();
            let key = self.string()?;
            self.ws();
            self.eat(b':')?;
            self.ws();
            match key {
                "metric" => metric = Some(self.string()?),
                "ts" => {
                    let (num, integral) = self.number()?;
                    if !integral {
                        return Err(Bail);
                    }
                    let t: i64 = num.parse().map_err(|_| Bail)?;
                    ts = Some(super::timestamp::epoch_int_to_ms(t).map_err(|_| Bail)?);
                }
                "value" => {
                    if self.peek() == Some(b'"') {
                        if self.string()? != "NaN" {
                            return Err(Bail);
                        }
                        value = Some(f64::NAN);
                    } else {
                        // correctly rounded, as serde_json's integer-then-cast and float paths are
                        let (num, _) = self.number()?;
                        let v = num.parse::<f64>().map_err(|_| Bail)?;
                        if !v.is_finite() {
                            return Err(Bail);
                        }
                        value = Some(v);
                    }
                }
                "tags" => {
                    // a repeated "tags" object adds to the first (as the serde path does)
                    self.eat(b'{')?;
                    self.ws();
                    if self.peek() == Some(b'}') {
                        self.i += 1;
                    } else {
                        loop {
                            self.ws();
                            let k = self.string()?;
                            self.ws();
                            self.eat(b':')?;
                            self.ws();
                            let v = self.string()?;
                            tags.push((k, v));
                            if self.object_ends()? {
                                break;
                            }
                        }
                    }
                }
                _ => return Err(Bail),
            }
            if self.object_ends()? {
                break;
            }
        }
        match (metric, ts, value) {
            (Some(m), Some(t), Some(v)) if !m.is_empty() => Ok(Point {
                metric: m,
                ts: t,
                value: v,
                tags,
            }),
            _ => Err(Bail),
        }
    }
}

/// Decode `text` (a whole JSON-format message) if it has the common shape. Points are
/// appended only when the whole message is accepted.
pub fn decode(
    text: &str,
    limits: &SeriesLimits,
    registry: &mut SeriesRegistry,
    out: &mut PointColumns,
) -> Result<(), Bail> {
    let mut sc = Scanner {
        s: text.as_bytes(),
        text,
        i: 0,
    };
    let mut points: SmallVec<[Point<'_>; 128]> = SmallVec::new();
    sc.ws();
    if sc.peek().is_none() {
        return Err(Bail);
    }
    while sc.peek().is_some() {
        match sc.peek() {
            Some(b'[') => {
                sc.i += 1;
                sc.ws();
                if sc.peek() == Some(b']') {
                    sc.i += 1;
                } else {
                    loop {
                        sc.ws();
                        points.push(sc.point()?);
                        sc.ws();
                        match sc.peek() {
                            Some(b',') => sc.i += 1,
                            Some(b']') => {
                                sc.i += 1;
                                break;
                            }
                            _ => return Err(Bail),
                        }
                    }
                }
            }
            Some(b'{') => points.push(sc.point()?),
            _ => return Err(Bail),
        }
        sc.ws();
    }
    // Every series first: a message beyond the limits leaves no points behind (the general
    // decoder then reports why).
    let mut series: SmallVec<[u32; 128]> = SmallVec::with_capacity(points.len());
    for p in &mut points {
        sort_tags(&mut p.tags);
        series.push(
            registry
                .try_resolve(p.metric, &p.tags, limits)
                .map_err(|_| Bail)?,
        );
    }
    for (p, s) in points.iter().zip(series) {
        out.push(s, p.ts, p.value);
    }
    Ok(())
}
