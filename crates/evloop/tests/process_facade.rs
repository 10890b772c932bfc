//! The facade's subprocess methods: `subprocess_shell` with a protocol and
//! `create_subprocess_exec` with streams, on `evloop::EventLoop`.

#![cfg(feature = "process")]

use evloop::{EventLoop, ProcessOptions, SubprocessProtocol, DEFAULT_LIMIT};

#[derive(Default)]
struct Out(Vec<u8>);

impl SubprocessProtocol for Out {
    fn pipe_data_received(&mut self, _fd: i32, data: &[u8]) {
        self.0.extend_from_slice(data);
    }
}

#[test]
fn spec_18_1_facade_subprocess_shell_and_create_subprocess_exec() {
    let lp = EventLoop::new().unwrap();
    let spawn = lp.subprocess_shell(Out::default, "echo hi; exit 3", ProcessOptions::default());
    let (transport, protocol) = lp.run_until_complete(spawn).unwrap().unwrap();
    assert_eq!(lp.run_until_complete(transport.wait()).unwrap(), 3);
    assert_eq!(protocol.with(|p| p.0.clone()).unwrap(), b"hi\n");

    let spawn = lp.create_subprocess_exec(
        "cat",
        [] as [&str; 0],
        ProcessOptions::default(),
        DEFAULT_LIMIT,
    );
    let out = lp
        .run_until_complete(async move {
            let mut child = spawn.await?;
            let (out, _) = child.communicate(Some(b"via streams")).await?;
            Ok::<_, evloop::Error>(out)
        })
        .unwrap()
        .unwrap();
    assert_eq!(out.as_deref(), Some(&b"via streams"[..]));
    lp.close().unwrap();
}
