//! The process's minor page faults so far (Linux's `getrusage`): a page the kernel mapped in and
//! zeroed, or found in memory, on first touch.

pub fn minor_faults() -> i64 {
    // SAFETY: getrusage writes the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        assert_eq!(libc::getrusage(libc::RUSAGE_SELF, &mut usage), 0);
        usage
    };
    usage.ru_minflt
}
