//! `serial`: splitting a play's hosts into the batches that run the play one after another.

use crate::playbook::Serial;

/// Splits hosts into `serial` batches.
pub fn batches(hosts: &[String], serial: &[Serial]) -> Vec<Vec<String>> {
    if serial.is_empty() {
        return vec![hosts.to_vec()];
    }
    let total = hosts.len();
    let mut out = Vec::new();
    let mut i = 0;
    let mut idx = 0;
    while i < total {
        let spec = &serial[idx.min(serial.len() - 1)];
        let size = match spec {
            Serial::Count(0) => total,
            Serial::Count(n) => *n,
            Serial::Percent(p) => ((total as f64) * p / 100.0).floor().max(1.0) as usize,
        };
        let end = (i + size).min(total);
        out.push(hosts[i..end].to_vec());
        i = end;
        idx += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_batches() {
        let hosts: Vec<String> = (1..=5).map(|i| format!("h{i}")).collect();
        assert_eq!(batches(&hosts, &[]).len(), 1);
        let b = batches(&hosts, &[Serial::Count(2)]);
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
        let b = batches(&hosts, &[Serial::Count(1), Serial::Percent(50.0)]);
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), [1, 2, 2]);
    }
}
