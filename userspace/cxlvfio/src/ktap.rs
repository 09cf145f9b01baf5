//! KTAP (Documentation/dev-tools/ktap.rst) output and result counting.
//!
//! The VM harness reads the smoke suite's result lines off the serial console,
//! where kernel messages can land between them, so the parser only trusts lines
//! that start exactly with a KTAP result.

use std::io::{self, Write};

/// Writes KTAP version 1 results and counts them.
///
/// Every line is flushed immediately so results and kernel messages stay in
/// order on a console.
pub struct Ktap<W: Write> {
    out: W,
    next: usize,
    plan: usize,
    passed: usize,
    failed: usize,
    skipped: usize,
}

impl Ktap<io::Stdout> {
    /// A reporter on standard output that plans `plan` tests.
    pub fn stdout(plan: usize) -> Self {
        Self::new(io::stdout(), plan)
    }
}

/// Makes `s` safe to put on one KTAP line: no line breaks, and (for names) no `#`
/// which would start a directive.
fn one_line(s: &str, allow_hash: bool) -> String {
    s.chars()
        .map(|c| match c {
            '\n' | '\r' => ' ',
            '#' if !allow_hash => '_',
            c => c,
        })
        .collect::<String>()
        .trim()
        .to_string()
}

impl<W: Write> Ktap<W> {
    /// Starts a report: prints the version and the plan line `1..plan`.
    pub fn new(out: W, plan: usize) -> Self {
        let mut k = Ktap {
            out,
            next: 1,
            plan,
            passed: 0,
            failed: 0,
            skipped: 0,
        };
        k.line("KTAP version 1");
        k.line(&format!("1..{plan}"));
        k
    }

    // Output errors are ignored: there is nowhere else to report them, and a
    // closed stdout must not abort the test run (it still cleans up and exits
    // with the right status).
    fn line(&mut self, text: &str) {
        let _ = writeln!(self.out, "{text}");
        let _ = self.out.flush();
    }

    fn take_number(&mut self) -> usize {
        let n = self.next;
        self.next += 1;
        n
    }

    /// Prints `# msg`, one `#` line per line of `msg`.
    pub fn diag(&mut self, msg: &str) {
        if msg.is_empty() {
            self.line("#");
        }
        for l in msg.lines() {
            self.line(&format!("# {}", l.trim_end()));
        }
    }

    /// Reports the next test as passed.
    pub fn ok(&mut self, name: &str) {
        let n = self.take_number();
        self.passed += 1;
        self.line(&format!("ok {n} {}", one_line(name, false)));
    }

    /// Reports `kernel_log_clean`: passed when the kernel log has no problem line
    /// ([`crate::kmsg::find_problems`]) since `mark` (from [`crate::kmsg::log_mark`]).
    pub fn kernel_log_clean(&mut self, mark: io::Result<u64>) {
        let name = "kernel_log_clean";
        match mark.and_then(crate::kmsg::problems_since) {
            Ok(p) if p.is_empty() => self.ok(name),
            Ok(p) => self.not_ok(name, &p.join(" | ")),
            Err(e) => self.not_ok(name, &format!("cannot read the kernel log: {e}")),
        }
    }

    /// Reports the next test as failed, with a one-line reason.
    pub fn not_ok(&mut self, name: &str, reason: &str) {
        let n = self.take_number();
        self.failed += 1;
        let reason = one_line(reason, true);
        if reason.is_empty() {
            self.line(&format!("not ok {n} {}", one_line(name, false)));
        } else {
            self.line(&format!("not ok {n} {} # {reason}", one_line(name, false)));
        }
    }

    /// Reports the next test as skipped (`ok N name # SKIP reason`).
    pub fn skip(&mut self, name: &str, reason: &str) {
        let n = self.take_number();
        self.skipped += 1;
        self.line(&format!(
            "ok {n} {} # SKIP {}",
            one_line(name, false),
            one_line(reason, true)
        ));
    }

    /// Tests reported as passed so far.
    pub fn passed(&self) -> usize {
        self.passed
    }

    /// Tests reported as failed so far.
    pub fn failed(&self) -> usize {
        self.failed
    }

    /// Tests reported as skipped so far.
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// True if nothing failed and every planned test was reported.
    pub fn all_passed(&self) -> bool {
        self.failed == 0 && self.next - 1 == self.plan
    }

    /// Prints the kselftest-style totals line and returns the writer.
    pub fn finish(mut self) -> W {
        let reported = self.next - 1;
        if reported != self.plan {
            self.diag(&format!(
                "planned {} tests but reported {reported}",
                self.plan
            ));
        }
        let line = format!(
            "# Totals: pass:{} fail:{} xfail:0 xpass:0 skip:{} error:0",
            self.passed, self.failed, self.skipped
        );
        self.line(&line);
        self.out
    }
}

/// Counts the top-level KTAP results in `text`: `(passed, failed, skipped)`.
///
/// A result line starts at column 0 with `ok <number>` or `not ok <number>`;
/// a `# SKIP` directive makes it a skip whatever its status. Indented lines
/// (subtests), diagnostics and anything else (such as kernel log lines
/// interleaved on a console) are ignored.
pub fn parse_results(text: &str) -> (usize, usize, usize) {
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for raw in text.lines() {
        let line = raw.trim_end_matches('\r');
        let (ok, rest) = if let Some(rest) = line.strip_prefix("ok ") {
            (true, rest)
        } else if let Some(rest) = line.strip_prefix("not ok ") {
            (false, rest)
        } else {
            continue;
        };
        // The test number is mandatory in KTAP; "ok then" is not a result.
        let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            continue;
        }
        let after = &rest[digits..];
        if !(after.is_empty() || after.starts_with(' ')) {
            continue;
        }
        let directive = after.split_once('#').map(|(_, d)| d.trim_start());
        // The directive is the first word after '#': "SKIP", any case.
        let is_skip = directive.is_some_and(|d| {
            d.split_whitespace()
                .next()
                .is_some_and(|w| w.eq_ignore_ascii_case("skip"))
        });
        if is_skip {
            skipped += 1;
        } else if ok {
            passed += 1;
        } else {
            failed += 1;
        }
    }
    (passed, failed, skipped)
}

/// Why a step of an in-VM suite did not pass: it failed, or it could not run here.
#[derive(Debug)]
pub enum Failure {
    /// The step failed, for this reason.
    Fail(String),
    /// The step does not apply to this device, for this reason.
    Skip(String),
}

impl From<String> for Failure {
    fn from(s: String) -> Self {
        Failure::Fail(s)
    }
}

impl From<&str> for Failure {
    fn from(s: &str) -> Self {
        Failure::Fail(s.to_string())
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Fail(e.to_string())
    }
}

/// The outcome of one step of an in-VM suite.
pub type StepResult = Result<(), Failure>;

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> String {
        let mut k = Ktap::new(Vec::new(), 4);
        k.ok("module_loaded");
        k.diag("expected 0x8086\ngot 0xffff");
        k.not_ok("config_ids", "vendor mismatch\n(second line)");
        k.skip("bar0_size", "no BAR");
        k.not_ok("weird#name", "");
        assert_eq!((k.passed(), k.failed(), k.skipped()), (1, 2, 1));
        assert!(!k.all_passed());
        String::from_utf8(k.finish()).unwrap()
    }

    #[test]
    fn reporter_format() {
        let text = report();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            vec![
                "KTAP version 1",
                "1..4",
                "ok 1 module_loaded",
                "# expected 0x8086",
                "# got 0xffff",
                "not ok 2 config_ids # vendor mismatch (second line)",
                "ok 3 bar0_size # SKIP no BAR",
                "not ok 4 weird_name",
                "# Totals: pass:1 fail:2 xfail:0 xpass:0 skip:1 error:0",
            ]
        );
    }

    #[test]
    fn reporter_output_round_trips() {
        assert_eq!(parse_results(&report()), (1, 2, 1));
    }

    #[test]
    fn reporter_notes_short_plan() {
        let mut k = Ktap::new(Vec::new(), 3);
        k.ok("a");
        assert!(!k.all_passed());
        let text = String::from_utf8(k.finish()).unwrap();
        assert!(
            text.contains("# planned 3 tests but reported 1\n"),
            "{text}"
        );
        let mut k = Ktap::new(Vec::new(), 1);
        k.ok("a");
        assert!(k.all_passed());
    }

    #[test]
    fn parser_counts_with_noise() {
        let text = "\
[    3.141592] cxl_vfio_pci 0000:0d:00.0: enabling device (0000 -> 0002)\r
KTAP version 1\r
1..6\r
ok 1 module_loaded\r
[    3.2] vfio-pci: ok 7 this is not a result\r
not ok 2 modinfo_lists_disable_cxl # no parm line\r
    # Subtest: nested\r
    ok 1 nested_case\r
    not ok 2 nested_fail\r
ok 3 param_disable_cxl_readonly # SKIP not built\r
not ok 4 device_bound # skipped-ish is not the SKIP directive\r
ok 5 device_reset # TODO later\r
# ok 8 in a diagnostic\r
ok then\r
okay 9 no\r
not ok\r
ok 6\r
ok 10x bad number\r
# Totals: pass:3 fail:2 xfail:0 xpass:0 skip:1 error:0\r
";
        // passed: 1, 5 (TODO is not a skip), 6; failed: 2, 4; skipped: 3.
        assert_eq!(parse_results(text), (3, 2, 1));
    }

    #[test]
    fn parser_skip_directive_any_status() {
        assert_eq!(parse_results("not ok 1 a # SKIP nope\n"), (0, 0, 1));
        assert_eq!(parse_results("ok 1 a # skip\n"), (0, 0, 1));
        assert_eq!(
            parse_results("not ok 1 a # depends on vfio_open\n"),
            (0, 1, 0)
        );
        assert_eq!(parse_results("ok 1 a #SKIP\n"), (0, 0, 1));
    }

    #[test]
    fn parser_empty_and_noise_only() {
        assert_eq!(parse_results(""), (0, 0, 0));
        assert_eq!(
            parse_results("WARNING: CPU: 0 PID: 1 at foo\nBUG: oops\n  ok 1 indented\n"),
            (0, 0, 0)
        );
    }
}
