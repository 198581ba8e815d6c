//! Lua scripts whose KEYS are named once, in their header, and filled by name.
//!
//! Every script opens with `-- KEYS: name, name, …` (continued on `--` lines indented further;
//! a name may be followed by a note in parentheses).
//! [`LuaScript::keyed`] builds the KEYS of a call from those names: each one of [`Keys`]'s
//! (`pending_messages`, `in_flight`, …) or one the call names itself (a worker's `processing`
//! list), so no caller writes a KEYS position and the order lives in one place, the script.
//!
//! Each script has one Rust module beside it: a struct of its arguments implementing [`Script`]
//! (which packs them in ARGV order) and its reply type (which decodes the reply's positions).
//! [`call`] runs one, and is the one place a script Redis lost is sent again; [`eval`] makes
//! one a command for a transaction. Lua shared by several scripts is written once and
//! prepended to each ([`LuaScript::new`] takes the parts), as [`TAKE_LEASE`] is.

pub mod stats;
pub mod upkeep;

use redis::ToRedisArgs;

use crate::Keys;

/// `take_lease(lease, holder, ms, renew)` (see `lua/lease.lua`), prepended to the scripts that
/// take the upkeep lease: the upkeep's own, and a worker's heartbeat.
pub const TAKE_LEASE: &str = include_str!("lua/lease.lua");

/// `push_list(list, items)` (see `lua/push_list.lua`): LPUSHes a Lua array in chunks that
/// `unpack` can hand over, prepended to the ingest API's admit scripts and the worker's take.
pub const PUSH_LIST: &str = include_str!("lua/push_list.lua");

/// One call of a script: its arguments, and what it answers. Implemented by the arguments
/// struct in the script's module.
pub trait Script {
    /// The reply, decoded.
    type Reply: redis::FromRedisValue;

    /// The script (its code built once, with the Lua it shares with others).
    fn script() -> &'static LuaScript;

    /// The keys this call names itself, by their header names (a worker's `processing`
    /// list), besides those of [`Keys`].
    fn own_keys(&self) -> Vec<(&'static str, &str)> {
        Vec::new()
    }

    /// Writes the arguments, in ARGV order.
    fn args<A: Argv>(&self, argv: &mut A);
}

/// Where a [`Script`] writes its arguments: an invocation, or an `EVAL` command.
pub trait Argv {
    /// Appends one argument (several for a slice).
    fn arg<T: ToRedisArgs>(&mut self, arg: T) -> &mut Self;
}

impl Argv for redis::ScriptInvocation<'_> {
    fn arg<T: ToRedisArgs>(&mut self, arg: T) -> &mut Self {
        redis::ScriptInvocation::arg(self, arg)
    }
}

impl Argv for redis::Cmd {
    fn arg<T: ToRedisArgs>(&mut self, arg: T) -> &mut Self {
        redis::Cmd::arg(self, arg)
    }
}

/// Runs `call` with `EVALSHA`, sending the code once more (`SCRIPT LOAD`) when Redis lost it
/// (a restart, a failover to a replica that never ran it).
pub async fn call<S, C>(redis: &mut C, keys: &Keys, call: &S) -> redis::RedisResult<S::Reply>
where
    S: Script,
    C: redis::aio::ConnectionLike + Send,
{
    let mut invocation = S::script().keyed(keys, &call.own_keys())?;
    call.args(&mut invocation);
    invocation.invoke_async(redis).await
}

/// `call` as one `EVAL` command with the script's code, for a transaction (`MULTI` … `EXEC`),
/// where an `EVALSHA` of a script Redis lost would fail at `EXEC`, after the commands before it
/// ran. `arg_bytes` sizes the command's buffer.
pub fn eval<S: Script>(keys: &Keys, call: &S, arg_bytes: usize) -> redis::RedisResult<redis::Cmd> {
    let mut cmd = S::script().eval_command(keys, &call.own_keys(), arg_bytes)?;
    call.args(&mut cmd);
    Ok(cmd)
}

/// The error of a reply whose shape is not its script's, for the reply types'
/// [`redis::FromRedisValue`] impls.
pub fn unexpected(script: &str, reply: &impl std::fmt::Debug) -> redis::ParsingError {
    format!("unexpected reply of {script}: {reply:?}").into()
}

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
    /// The script made of `parts` in order (the Lua it shares with other scripts, then its
    /// own), its KEYS named by the `-- KEYS:` header of its own part, the last one.
    pub fn new(parts: &[&str]) -> Self {
        let source = parts.last().copied().unwrap_or_default();
        let code: String = parts
            .iter()
            .flat_map(|part| part.lines())
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
    /// [`Self::keyed`]) and room for `arg_bytes` bytes of arguments (see [`eval`]).
    fn eval_command(
        &self,
        keys: &Keys,
        extra: &[(&str, &str)],
        arg_bytes: usize,
    ) -> redis::RedisResult<redis::Cmd> {
        let filled = self.fill(keys, extra)?;
        let key_bytes: usize = filled.iter().map(|k| k.len()).sum();
        let mut cmd = redis::Cmd::with_capacity(
            3 + filled.len() + 8,
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
        let script = LuaScript::new(&[
            "-- What it does.\n-- KEYS: pending_messages, processing (this worker's),\n--       in_flight\n-- ARGV: n\nreturn 1",
        ]);
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
    fn the_shared_lua_comes_first_and_the_header_is_the_scripts_own() {
        let script = LuaScript::new(&[
            "-- KEYS: not_these\nlocal function f() return 1 end\n",
            "-- KEYS: in_flight\nreturn f()",
        ]);
        assert_eq!(script.key_names(), ["in_flight"]);
        assert_eq!(script.code, "local function f() return 1 end\nreturn f()\n");
    }

    #[test]
    fn every_script_of_the_core_names_only_known_keys() {
        let keys = Keys::new("");
        let upkeep = upkeep::Upkeep {
            holder: "h",
            release: false,
            worker_fresh_ms: 1,
            replicas_wanted: 0,
        };
        assert!(eval(&keys, &upkeep, 0).is_ok());
        assert!(eval(&keys, &stats::ReadStats { worker_fresh_ms: 1 }, 0).is_ok());
    }
}
