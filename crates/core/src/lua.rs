//! Lua scripts whose KEYS are named once, in their header, and filled by name.
//!
//! Every script opens with `-- KEYS: name, name, …` (continued on `--` lines indented further;
//! a name may be followed by a note in parentheses).
//! [`LuaScript::keyed`] builds the KEYS of a call from those names: each one of [`Keys`]'s
//! (`pending_messages`, `in_flight`, …) or one the call names itself (a worker's `processing`
//! list), so no caller writes a KEYS position and the order lives in one place, the script.
//! Each script still has one typed Rust method, which packs its ARGV and reads its reply.

use crate::Keys;

/// A script and the names of its KEYS, in order.
#[derive(Debug, Clone)]
pub struct LuaScript {
    script: redis::Script,
    /// The code as Redis gets it: the source without its comment lines, which Redis would
    /// otherwise hash on every `EVAL` ([`Self::eval_command`]).
    code: String,
    keys: Vec<String>,
}

impl LuaScript {
    /// The script `source`, its KEYS named by its `-- KEYS:` header.
    pub fn new(source: &str) -> Self {
        let code: String = source
            .lines()
            .filter(|line| {
                let line = line.trim_start();
                !line.is_empty() && !line.starts_with("--")
            })
            .flat_map(|line| [line, "\n"])
            .collect();
        Self {
            script: redis::Script::new(&code),
            code,
            keys: key_names(source),
        }
    }

    /// The KEYS names, in order.
    pub fn key_names(&self) -> &[String] {
        &self.keys
    }

    /// An invocation with every KEY filled: from `extra` (this call's own keys, such as
    /// `("processing", list)`) first, else from `keys`. A name neither knows is a programming
    /// error, answered as a Redis client error naming it.
    pub fn keyed<'a>(
        &'a self,
        keys: &Keys,
        extra: &[(&str, &str)],
    ) -> redis::RedisResult<redis::ScriptInvocation<'a>> {
        let mut invocation = self.script.prepare_invoke();
        for key in self.fill(keys, extra)? {
            invocation.key(key);
        }
        Ok(invocation)
    }

    /// An `EVAL` of this script, its code in the command, with every KEY filled (as
    /// [`Self::keyed`]) and room for `args` arguments of `arg_bytes` bytes: for a script
    /// queued in a transaction (`MULTI` … `EXEC`), where an `EVALSHA` of a script Redis lost
    /// would fail at `EXEC`, after the commands before it in the transaction ran.
    pub fn eval_command(
        &self,
        keys: &Keys,
        extra: &[(&str, &str)],
        args: usize,
        arg_bytes: usize,
    ) -> redis::RedisResult<redis::Cmd> {
        let filled = self.fill(keys, extra)?;
        let key_bytes: usize = filled.iter().map(|k| k.len()).sum();
        let mut cmd = redis::Cmd::with_capacity(
            3 + filled.len() + args,
            "EVAL".len() + self.code.len() + 4 + key_bytes + arg_bytes,
        );
        cmd.arg("EVAL").arg(&self.code).arg(filled.len());
        for key in filled {
            cmd.arg(key);
        }
        Ok(cmd)
    }

    /// The KEYS of a call, in order: from `extra` first, else from `keys`.
    fn fill<'k>(
        &self,
        keys: &'k Keys,
        extra: &[(&str, &'k str)],
    ) -> redis::RedisResult<Vec<&'k str>> {
        self.keys
            .iter()
            .map(|name| {
                extra
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, key)| *key)
                    .or_else(|| keys.named(name))
                    .ok_or_else(|| {
                        redis::RedisError::from((
                            redis::ErrorKind::Client,
                            "a script names a key nobody gives",
                            name.clone(),
                        ))
                    })
            })
            .collect()
    }
}

/// The names of the `-- KEYS:` header.
fn key_names(source: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut lines = source
        .lines()
        .skip_while(|l| !l.starts_with("-- KEYS:"))
        .peekable();
    let Some(first) = lines.next() else {
        return names;
    };
    let mut text = first.trim_start_matches("-- KEYS:").to_owned();
    while let Some(next) = lines.next_if(|l| l.starts_with("--   ")) {
        text.push(',');
        text.push_str(next.trim_start_matches("--"));
    }
    // Each name may be followed by a note in parentheses: `processing (the claimer's)`.
    for name in text.split(',').filter_map(|n| n.split_whitespace().next()) {
        names.push(name.to_owned());
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_names_the_keys_in_order_across_lines() {
        let script = LuaScript::new(
            "-- What it does.\n-- KEYS: pending_messages, processing (this worker's),\n--       in_flight\n-- ARGV: n\nreturn 1",
        );
        assert_eq!(
            script.key_names(),
            ["pending_messages", "processing", "in_flight"]
        );
        let keys = Keys::new("p:");
        assert!(
            script
                .keyed(&keys, &[("processing", "p:processing:w1")])
                .is_ok()
        );
        let missing = script
            .keyed(&keys, &[])
            .expect_err("processing is nobody's");
        assert!(missing.to_string().contains("processing"), "{missing}");
    }

    #[test]
    fn every_script_of_the_core_names_only_known_keys() {
        let keys = Keys::new("");
        for source in [
            include_str!("lua/stats.lua"),
            include_str!("lua/upkeep.lua"),
        ] {
            let script = LuaScript::new(source);
            assert!(!script.key_names().is_empty());
            assert!(script.keyed(&keys, &[]).is_ok(), "{:?}", script.key_names());
        }
    }
}
