//! POSIX shell quoting, for the one place a command line becomes shell text: the remote command of `ssh`.

/// Quote `word` so that a POSIX shell (sh, dash, bash, zsh) reads it back as exactly one word, byte for byte:
/// words made only of characters no shell treats specially stay as they are, anything else is wrapped in
/// single quotes with each `'` written as `'\''`. Nothing inside single quotes is special to the shell.
pub fn sh_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-./:=@%+,".contains(&b))
        // A leading `=`-word first on a line would read as an assignment.
        && !word.starts_with('=');
    if plain { word.to_string() } else { format!("'{}'", word.replace('\'', r"'\''")) }
}

/// Join words into one shell command line, each quoted with [`sh_quote`].
pub fn sh_join<S: AsRef<str>>(words: &[S]) -> String {
    words.iter().map(|w| sh_quote(w.as_ref())).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `sh -c 'printf "%s\0" "$@"' sh <line>` reads back from a quoted line.
    fn shell_reads(line: &str) -> Vec<String> {
        let out =
            std::process::Command::new("sh").arg("-c").arg(format!("printf '%s\\0' {line}")).output().expect("run sh");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let mut words: Vec<String> =
            out.stdout.split(|&b| b == 0).map(|w| String::from_utf8(w.to_vec()).unwrap()).collect();
        words.pop();
        words
    }

    #[test]
    fn plain_words_stay_as_they_are() {
        assert_eq!(sh_quote("claude"), "claude");
        assert_eq!(sh_quote("/usr/bin/env"), "/usr/bin/env");
        assert_eq!(sh_quote("a=b"), "a=b");
        assert_eq!(sh_quote("--verbose"), "--verbose");
        assert_eq!(sh_quote(""), "''");
    }

    #[test]
    fn every_metacharacter_reaches_the_program_as_one_identical_word() {
        let hostile = [
            "$(touch /tmp/obra-pwned)",
            "`id`",
            "a; rm -rf ~",
            "it's \"quoted\" 'twice'",
            "back\\slash \\n and a real\nnewline",
            "glob * ? [a-z] ~ {a,b}",
            "pipes | && || > < >> 2>&1 &",
            "$HOME ${PATH} $$ $? !! #comment",
            "tab\tand unicode ✓ é",
            "'",
            "''",
            "-n",
        ];
        let line = sh_join(&hostile);
        assert_eq!(shell_reads(&line), hostile, "{line}");
    }
}
