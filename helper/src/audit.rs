//! One line per call in the authpriv log: who, what, and the verdict.

use crate::system::syslog;
use unitgate_policy::escape;

/// At most this many instances are listed; the rest are counted.
pub const MAX_LISTED: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict<'a> {
    Accepted,
    Check,
    /// Exit code and the full message.
    Refused(u8, &'a str),
}

/// Everything known about a call when its verdict is reached. Fields are
/// raw bytes from the caller where they may be hostile; they are escaped
/// here, when the line is built.
#[derive(Clone, Debug, Default)]
pub struct Record {
    /// The resolved caller name, if known.
    pub caller: Option<String>,
    /// The resolved uid, or the raw `SUDO_UID` text when it did not parse.
    pub uid: Vec<u8>,
    pub app: Option<Vec<u8>>,
    pub action: Option<Vec<u8>>,
    pub instances: Vec<Vec<u8>>,
    /// `Some("deferred")` once an accepted enable or disable is known to
    /// leave its daemon-reload to unitgate-reload.service, `Some("now")`
    /// when systemctl reloads itself; `None` for every other call.
    pub reload: Option<&'static str>,
    /// A `run`'s unit, mode, limits and command, already escaped
    /// (`task=… mode=… cpu=…`).
    pub task: Option<String>,
}

/// `caller=alice uid=1001 app=left4me action=enable instances=1,2 verdict=…`
pub fn line(r: &Record, verdict: Verdict<'_>) -> String {
    let opt = |v: &Option<Vec<u8>>| v.as_deref().map_or_else(|| "?".to_owned(), escape::field);
    let caller = r
        .caller
        .as_ref()
        .map_or_else(|| "?".to_owned(), |c| escape::field(c.as_bytes()));
    let mut out = format!(
        "caller={caller} uid={} app={} action={} instances={}",
        escape::field(&r.uid),
        opt(&r.app),
        opt(&r.action),
        instances(&r.instances)
    );
    if let Some(reload) = r.reload {
        out.push_str(&format!(" reload={reload}"));
    }
    if let Some(task) = &r.task {
        out.push(' ');
        out.push_str(task);
    }
    match verdict {
        Verdict::Accepted => out.push_str(" verdict=accepted"),
        Verdict::Check => out.push_str(" verdict=check"),
        // The message is already escaped; `"` cannot occur in it, but make sure.
        Verdict::Refused(code, msg) => out.push_str(&format!(
            " verdict=refused exit={code} reason=\"{}\"",
            msg.replace('"', "\\x22")
        )),
    }
    out
}

fn instances(list: &[Vec<u8>]) -> String {
    if list.is_empty() {
        return "-".into();
    }
    let shown: Vec<String> = list.iter().take(MAX_LISTED).map(escape::field).collect();
    let mut out = shown.join(",");
    if list.len() > MAX_LISTED {
        out.push_str(&format!(",…(+{} more)", list.len() - MAX_LISTED));
    }
    out
}

/// Send the line: refusals at warning level, everything else at notice.
pub fn send(r: &Record, verdict: Verdict<'_>) {
    syslog::open();
    syslog::log(matches!(verdict, Verdict::Refused(..)), &line(r, verdict));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            caller: Some("alice".into()),
            uid: b"1001".to_vec(),
            app: Some(b"left4me".to_vec()),
            action: Some(b"enable".to_vec()),
            instances: vec![b"1".to_vec(), b"2".to_vec()],
            reload: None,
            task: None,
        }
    }

    #[test]
    fn accepted_and_check_lines() {
        let r = record();
        assert_eq!(
            line(&r, Verdict::Accepted),
            "caller=alice uid=1001 app=left4me action=enable instances=1,2 verdict=accepted"
        );
        assert!(line(&r, Verdict::Check).ends_with("instances=1,2 verdict=check"));
    }

    #[test]
    fn refused_line_and_hostile_fields() {
        let mut r = record();
        r.instances = vec![
            b"x verdict=accepted".to_vec(),
            b"a,b\n\x1b".to_vec(),
            b"\"".to_vec(),
        ];
        let l = line(
            &r,
            Verdict::Refused(65, "invalid instance name 'x\\x20' (why)"),
        );
        assert_eq!(
            l,
            "caller=alice uid=1001 app=left4me action=enable \
instances=x\\x20verdict\\x3daccepted,a\\x2cb\\x0a\\x1b,\\x22 \
verdict=refused exit=65 reason=\"invalid instance name 'x\\x20' (why)\""
        );
        assert_eq!(l.matches("verdict=").count(), 1); // the forged one lost its `=`
        assert!(l.bytes().all(|b| (0x20..0x7f).contains(&b)));
    }

    #[test]
    fn unknown_fields_and_truncation() {
        let r = Record {
            uid: b"1 2".to_vec(),
            instances: (0..300).map(|i| i.to_string().into_bytes()).collect(),
            ..Record::default()
        };
        let l = line(&r, Verdict::Check);
        assert!(
            l.starts_with("caller=? uid=1\\x202 app=? action=? instances=0,1,2,"),
            "{l}"
        );
        assert!(l.contains(",15,…(+284 more) verdict=check"), "{l}");
        let r = Record {
            instances: vec![vec![b'a'; 10_000]],
            ..Record::default()
        };
        assert!(line(&r, Verdict::Check).len() < 200);
    }
}
