//! slipctl's shell completions and the three binaries' man pages, from the
//! real binaries: bash loads the script and completes a subcommand, zsh and
//! fish parse theirs (content checks when a shell is not installed), and
//! every page renders with `man` (roff checks without it).

use std::{
    path::Path,
    process::{Command, Output},
};

use slipway_tests::{control_process::control_plane_binary, process::agent_binary, slipctl};

fn slipctl(args: &[&str]) -> Output {
    Command::new(slipctl::binary())
        .args(args)
        .output()
        .expect("run slipctl")
}

fn completion(shell: &str) -> String {
    let output = slipctl(&["completions", shell]);
    assert!(output.status.success(), "{shell}: {output:?}");
    String::from_utf8(output.stdout).expect("utf-8")
}

fn has(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn bash_loads_the_completions_and_completes_subcommands() {
    let script = format!(
        "source <({} completions bash) && complete -p slipctl && \
         COMP_WORDS=(slipctl depl) COMP_CWORD=1 && _slipctl slipctl depl slipctl && \
         echo \"${{COMPREPLY[@]}}\"",
        slipctl::binary().display()
    );
    let output = Command::new("bash")
        .args(["-c", &script])
        .output()
        .expect("bash");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    let mut lines = stdout.lines();
    assert_eq!(
        lines.next(),
        Some("complete -o bashdefault -o default -o nosort -F _slipctl slipctl")
    );
    let words: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    assert_eq!(words, ["deploy", "deployment"]);
}

#[test]
fn zsh_and_fish_completions_parse() {
    let dir = tempfile::tempdir().expect("temp dir");
    let zsh = completion("zsh");
    assert!(zsh.starts_with("#compdef slipctl"), "{}", &zsh[..80]);
    assert!(zsh.contains("'deploy:") && zsh.contains("--endpoint"));
    let fish = completion("fish");
    assert!(fish.contains("complete -c slipctl") && fish.contains("-a \"deploy\""));
    for (shell, text, check) in [("zsh", &zsh, "-n"), ("fish", &fish, "--no-execute")] {
        if !has(shell) {
            eprintln!("{shell} is not installed: content checked only");
            continue;
        }
        let file = dir.path().join(shell);
        std::fs::write(&file, text).expect("write");
        let output = Command::new(shell)
            .arg(check)
            .arg(&file)
            .output()
            .expect("shell");
        assert!(output.status.success(), "{shell} {check}: {output:?}");
    }
}

#[test]
fn an_unknown_shell_is_a_usage_error() {
    let output = slipctl(&["completions", "tcsh"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("possible values: bash, zsh, fish"),
        "{stderr}"
    );
}

/// `page` rendered by `man` (or its roff checked without man).
fn renders(page: &Path, name: &str) {
    let roff = std::fs::read_to_string(page).expect("read page");
    assert!(
        roff.contains(&format!(".TH {name} 1")),
        "{}",
        page.display()
    );
    assert!(roff.contains(".SH NAME") && roff.contains(".SH SYNOPSIS"));
    if !has("man") {
        return;
    }
    let output = Command::new("man")
        .args(["-P", "cat", "-l"])
        .arg(page)
        .env("MANWIDTH", "100")
        .output()
        .expect("man");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}: {output:?}", page.display());
    assert!(text.contains("NAME") && text.contains("SYNOPSIS"), "{text}");
}

#[test]
fn man_pages_of_slipctl_its_subcommands_and_the_daemons_render() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("man1");
    let output = slipctl(&["man", "--out", out.to_str().expect("utf-8")]);
    assert!(output.status.success(), "{output:?}");
    let said = String::from_utf8_lossy(&output.stdout);
    let pages = std::fs::read_dir(&out).expect("pages").count();
    assert!(pages > 50, "{pages} pages");
    assert!(
        said.starts_with(&format!("wrote {pages} man pages to ")),
        "{said}"
    );
    renders(&out.join("slipctl.1"), "slipctl");
    renders(&out.join("slipctl-deploy.1"), "slipctl-deploy");
    renders(&out.join("slipctl-pki-init.1"), "slipctl-pki-init");
    for (binary, name) in [
        (control_plane_binary(), "slipway-control-plane"),
        (agent_binary(), "slipway-agent"),
    ] {
        let output = Command::new(binary)
            .arg("--print-man")
            .output()
            .expect("daemon");
        assert!(output.status.success(), "{name}: {output:?}");
        let page = dir.path().join(format!("{name}.1"));
        std::fs::write(&page, &output.stdout).expect("write");
        renders(&page, name);
        let roff = String::from_utf8_lossy(&output.stdout);
        assert!(roff.contains("\\-\\-config"), "{name}");
    }
}
