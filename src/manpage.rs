//! Man pages, rendered by clap_mangen from the clap definitions: `dynsup(1)`, which
//! lists every command, and one `dynsup-COMMAND(1)` per command (hidden ones left out).

use crate::cli::Cli;
use crate::exit_status::ExitStatus;
use clap::CommandFactory;
use std::io::Write;
use std::path::{Path, PathBuf};

/// `dynsup manpage [--dir DIR]`: dynsup(1) on stdout, or every page written into `dir`
/// (created if missing; each path written is printed).
pub fn run(dir: Option<&Path>) -> ExitStatus {
    let result = match dir {
        None => main_page().and_then(|page| std::io::stdout().write_all(&page)),
        Some(dir) => write_pages(dir).map(|paths| {
            for path in paths {
                crate::outln!("{}", path.display());
            }
        }),
    };
    match result {
        Ok(()) => ExitStatus::Ok,
        // `dynsup manpage | head`: the reader wanted no more.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitStatus::Ok,
        Err(e) => {
            eprintln!("dynsup: cannot write the man page(s): {e}");
            ExitStatus::Error
        }
    }
}

/// dynsup(1), as roff.
pub fn main_page() -> std::io::Result<Vec<u8>> {
    let man = clap_mangen::Man::new(command()).source(source());
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;
    man.render_subcommands_section(&mut page)?;
    // `--help`'s after-help, under the heading man pages give it.
    let exit_status = roff::Roff::new()
        .control("SH", ["EXIT STATUS"])
        .text([roff::roman(crate::exit_status::HELP)])
        .to_roff();
    page.extend_from_slice(exit_status.as_bytes());
    man.render_version_section(&mut page)?;
    Ok(page)
}

/// The footer's source: `dynsup VERSION`.
fn source() -> String {
    format!("dynsup {}", env!("CARGO_PKG_VERSION"))
}

/// Every page, by file name: `dynsup.1`, then `dynsup-COMMAND.1` per visible command.
pub fn pages() -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let root = command();
    let mut pages = vec![("dynsup.1".to_string(), main_page()?)];
    for sub in root.get_subcommands().filter(|s| !s.is_hide_set()) {
        // After `build`, a subcommand's display name is `dynsup-NAME` and its bin name
        // `dynsup NAME`: the page's title and synopsis.
        let title = sub
            .get_display_name()
            .map_or_else(|| format!("dynsup-{}", sub.get_name()), str::to_string);
        let mut page = Vec::new();
        clap_mangen::Man::new(sub.clone())
            .title(title.clone())
            .source(source())
            .render(&mut page)?;
        pages.push((format!("{title}.1"), page));
    }
    Ok(pages)
}

/// Writes [`pages`] into `dir`; the paths written.
pub fn write_pages(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for (file, page) in pages()? {
        let path = dir.join(file);
        std::fs::write(&path, page)?;
        written.push(path);
    }
    Ok(written)
}

/// The CLI's definitions, built (globals propagated, display and bin names set), without
/// clap's own `help` subcommand.
fn command() -> clap::Command {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}
