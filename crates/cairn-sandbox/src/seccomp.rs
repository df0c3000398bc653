//! The system-call filter every sandbox runs under, compiled to BPF with
//! `seccompiler` and handed to bubblewrap, which installs it before the
//! kernel's first instruction.
//!
//! Refused (EPERM): debugging other processes, mounting, the kernel keyring,
//! BPF, performance counters, new namespaces (`unshare`, `setns`, `clone`
//! with a namespace flag), io_uring, raw and packet sockets, module loading,
//! reboot and swap, userfaultfd, handle-based opens and cross-process memory
//! access. `clone3` answers ENOSYS so that the C library falls back to
//! `clone`, whose flags the filter can see.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule, TargetArch,
};

use crate::{Error, Result};

const NAMESPACE_FLAGS: [u64; 7] = [
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWCGROUP as u64,
];

fn arch() -> Result<TargetArch> {
    if cfg!(target_arch = "x86_64") {
        Ok(TargetArch::x86_64)
    } else if cfg!(target_arch = "aarch64") {
        Ok(TargetArch::aarch64)
    } else {
        Err(Error::Unavailable("the sandbox's system-call filter supports x86_64 and aarch64".into()))
    }
}

fn condition(arg: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompRule> {
    let condition = SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value).map_err(filter_error)?;
    SeccompRule::new(vec![condition]).map_err(filter_error)
}

fn filter_error(error: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!("cannot build the system-call filter: {error}"))
}

fn compile(rules: BTreeMap<i64, Vec<SeccompRule>>, errno: i32) -> Result<Vec<u8>> {
    let filter = SeccompFilter::new(rules, SeccompAction::Allow, SeccompAction::Errno(errno as u32), arch()?)
        .map_err(filter_error)?;
    let program: BpfProgram = filter.try_into().map_err(filter_error)?;
    Ok(program
        .iter()
        .flat_map(|i| {
            let mut bytes = Vec::with_capacity(8);
            bytes.extend_from_slice(&i.code.to_ne_bytes());
            bytes.push(i.jt);
            bytes.push(i.jf);
            bytes.extend_from_slice(&i.k.to_ne_bytes());
            bytes
        })
        .collect())
}

/// The two BPF programs (raw `sock_filter` arrays): the refusals, and the
/// `clone3` fallback. Compiled once per process.
pub(crate) fn programs() -> Result<(&'static [u8], &'static [u8])> {
    type Compiled = Result<(Vec<u8>, Vec<u8>), String>;
    static PROGRAMS: OnceLock<Compiled> = OnceLock::new();
    match PROGRAMS.get_or_init(|| build().map_err(|e| e.to_string())) {
        Ok((refusals, clone3)) => Ok((refusals, clone3)),
        Err(message) => Err(Error::Unavailable(message.clone())),
    }
}

/// The calls refused outright, by number and by name (the name for the
/// container engines' OCI profile).
const REFUSED: [(i64, &str); 32] = [
    (libc::SYS_ptrace, "ptrace"),
    (libc::SYS_process_vm_readv, "process_vm_readv"),
    (libc::SYS_process_vm_writev, "process_vm_writev"),
    (libc::SYS_mount, "mount"),
    (libc::SYS_umount2, "umount2"),
    (libc::SYS_pivot_root, "pivot_root"),
    (libc::SYS_chroot, "chroot"),
    (libc::SYS_keyctl, "keyctl"),
    (libc::SYS_add_key, "add_key"),
    (libc::SYS_request_key, "request_key"),
    (libc::SYS_bpf, "bpf"),
    (libc::SYS_perf_event_open, "perf_event_open"),
    (libc::SYS_unshare, "unshare"),
    (libc::SYS_setns, "setns"),
    (libc::SYS_io_uring_setup, "io_uring_setup"),
    (libc::SYS_io_uring_enter, "io_uring_enter"),
    (libc::SYS_io_uring_register, "io_uring_register"),
    (libc::SYS_init_module, "init_module"),
    (libc::SYS_finit_module, "finit_module"),
    (libc::SYS_delete_module, "delete_module"),
    (libc::SYS_kexec_load, "kexec_load"),
    (libc::SYS_reboot, "reboot"),
    (libc::SYS_swapon, "swapon"),
    (libc::SYS_swapoff, "swapoff"),
    (libc::SYS_acct, "acct"),
    (libc::SYS_userfaultfd, "userfaultfd"),
    (libc::SYS_open_by_handle_at, "open_by_handle_at"),
    (libc::SYS_name_to_handle_at, "name_to_handle_at"),
    (libc::SYS_fsopen, "fsopen"),
    (libc::SYS_fsmount, "fsmount"),
    (libc::SYS_move_mount, "move_mount"),
    (libc::SYS_open_tree, "open_tree"),
];

fn build() -> Result<(Vec<u8>, Vec<u8>)> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = REFUSED.iter().map(|(nr, _)| (*nr, Vec::new())).collect();
    let clone_rules = NAMESPACE_FLAGS
        .iter()
        .map(|flag| condition(0, SeccompCmpOp::MaskedEq(*flag), *flag))
        .collect::<Result<Vec<_>>>()?;
    rules.insert(libc::SYS_clone, clone_rules);
    let socket_rules = vec![
        condition(0, SeccompCmpOp::Eq, libc::AF_PACKET as u64)?,
        condition(0, SeccompCmpOp::Eq, libc::AF_NETLINK as u64)?,
        condition(1, SeccompCmpOp::MaskedEq(0xF), libc::SOCK_RAW as u64)?,
    ];
    rules.insert(libc::SYS_socket, socket_rules);
    let refusals = compile(rules, libc::EPERM)?;
    let clone3 = compile(BTreeMap::from([(libc::SYS_clone3, Vec::new())]), libc::ENOSYS)?;
    Ok((refusals, clone3))
}

/// The same filter as an OCI seccomp profile (JSON), for container
/// engines: everything allowed but what the BPF programs above refuse, with
/// the same answers.
pub(crate) fn oci_profile() -> Result<String> {
    let architecture = match arch()? {
        TargetArch::aarch64 => "SCMP_ARCH_AARCH64",
        _ => "SCMP_ARCH_X86_64",
    };
    let refuse = |names: &[&str], args: serde_json::Value| serde_json::json!({ "names": names, "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EPERM, "args": args });
    let masked = |index: u32, mask: u64, value: u64| serde_json::json!([{ "index": index, "value": mask, "valueTwo": value, "op": "SCMP_CMP_MASKED_EQ" }]);
    let equal = |index: u32, value: u64| serde_json::json!([{ "index": index, "value": value, "op": "SCMP_CMP_EQ" }]);
    let names: Vec<&str> = REFUSED.iter().map(|(_, name)| *name).collect();
    let mut syscalls = vec![refuse(&names, serde_json::json!([]))];
    syscalls.extend(NAMESPACE_FLAGS.iter().map(|flag| refuse(&["clone"], masked(0, *flag, *flag))));
    syscalls.push(refuse(&["socket"], equal(0, libc::AF_PACKET as u64)));
    syscalls.push(refuse(&["socket"], equal(0, libc::AF_NETLINK as u64)));
    syscalls.push(refuse(&["socket"], masked(1, 0xF, libc::SOCK_RAW as u64)));
    syscalls.push(serde_json::json!({ "names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::ENOSYS }));
    let profile = serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": [architecture],
        "syscalls": syscalls,
    });
    serde_json::to_string(&profile).map_err(|e| Error::Unavailable(format!("cannot write the seccomp profile: {e}")))
}
