//! Checksums of the Arrow IPC files coalmine writes (segments, archive files): the footer's
//! custom metadata `coalmine.crc32` holds the CRC-32 of every byte before the end-of-stream
//! marker (the magic, the schema, the dictionaries and the record batches), so one flipped
//! bit anywhere in the data is caught when the file is read. Files without the key (written
//! before checksums existed) are read unverified.

use std::io::Write;

use arrow::error::ArrowError;
use arrow::ipc::writer::FileWriter;

/// The footer metadata key.
pub const KEY: &str = "coalmine.crc32";

/// A writer that hashes what goes through it.
pub struct Hashing<W> {
    inner: W,
    crc: crc32fast::Hasher,
}

impl<W> Hashing<W> {
    pub fn new(inner: W) -> Self {
        Hashing {
            inner,
            crc: crc32fast::Hasher::new(),
        }
    }

    pub fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Record the CRC of everything written so far in the footer, and finish the file.
pub fn finish<W: Write>(w: &mut FileWriter<Hashing<W>>) -> Result<(), ArrowError> {
    let crc = w.get_ref().crc.clone().finalize();
    w.write_metadata(KEY, format!("{crc:08x}"));
    w.finish()
}

/// The end-of-stream marker before the footer: a continuation marker and a zero length.
const EOS: [u8; 8] = [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];

/// Check a whole IPC file against the CRC its footer records (`recorded`, from the
/// reader's custom metadata). `Ok(false)`: the file records none.
pub fn verify(bytes: &[u8], recorded: Option<&String>) -> Result<bool, String> {
    let Some(recorded) = recorded else {
        return Ok(false);
    };
    let n = bytes.len();
    let footer_len = n
        .checked_sub(10)
        .and_then(|i| bytes.get(i..i + 4))
        .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .and_then(|l| usize::try_from(l).ok());
    let end = footer_len.and_then(|f| n.checked_sub(10 + f + EOS.len()));
    let Some(end) = end.filter(|&e| bytes[e..e + EOS.len()] == EOS) else {
        return Err("its footer does not follow an end-of-stream marker".into());
    };
    let crc = format!("{:08x}", crc32fast::hash(&bytes[..end]));
    if &crc != recorded {
        return Err(format!(
            "checksum mismatch: its data hashes to {crc}, its footer records {recorded}: the file was damaged or changed after it was written"
        ));
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, RecordBatch};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::ipc::reader::FileReader;
    use std::sync::Arc;

    fn file(values: Vec<f64>) -> Vec<u8> {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Float64, false)]));
        let batch =
            RecordBatch::try_new(schema.clone(), vec![Arc::new(Float64Array::from(values))])
                .unwrap();
        let mut w = FileWriter::try_new(Hashing::new(Vec::new()), &schema).unwrap();
        w.write(&batch).unwrap();
        finish(&mut w).unwrap();
        w.into_inner().unwrap().into_inner()
    }

    fn check(bytes: &[u8]) -> Result<bool, String> {
        let r = FileReader::try_new(std::io::Cursor::new(bytes), None).unwrap();
        verify(bytes, r.custom_metadata().get(KEY))
    }

    #[test]
    fn every_flipped_bit_of_the_data_is_caught() {
        let bytes = file(vec![1.5, 2.5, 3.5]);
        assert_eq!(check(&bytes), Ok(true));
        let value = 2.5f64.to_le_bytes();
        let at = bytes.windows(8).position(|w| w == value).unwrap();
        for bit in 0..64 {
            let mut bad = bytes.clone();
            bad[at + bit / 8] ^= 1 << (bit % 8);
            let e = check(&bad).unwrap_err();
            assert!(e.starts_with("checksum mismatch"), "{e}");
        }
    }
}
