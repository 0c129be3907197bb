//! The subcommands: glue between the command line and the engine.

use crate::cli::{AdhocArgs, InventoryArgs, PlaybookArgs, RunOpts};
use crate::config::Config;
use crate::error::{syntax, usage, Fatal};
use crate::executor::{Engine, RunOptions};
use crate::inventory::{self, pattern, Inventory};
use crate::modules::ModuleFinder;
use crate::output::{AdhocReporter, JsonReporter, Reporter, TextReporter};
use crate::playbook::Playbook;
use anyhow::Result;
use std::path::{Path, PathBuf};

/// Inventory sources from `-i`, else ansible.cfg / `ANSIBLE_INVENTORY`.
fn inventory_sources(cli: &[String], cfg: &crate::config::Config) -> Vec<String> {
    if !cli.is_empty() {
        cli.to_vec()
    } else {
        cfg.inventory.clone()
    }
}

/// `etcd-agent inventory`.
pub fn inventory(args: InventoryArgs) -> Result<i32> {
    let cfg = crate::config::load()?;
    vault_setup(&RunOpts::default(), &cfg)?;
    let sources = inventory_sources(&args.inventory, &cfg);
    if sources.is_empty() {
        return Err(usage("no inventory given: use -i INVENTORY"));
    }
    let mut inv = Inventory::load(&sources)?;
    // like ansible-inventory, the current directory is the "playbook dir" for group_vars/host_vars
    inv.add_playbook_dir(std::path::Path::new("."))?;
    if let Some(limit) = &args.limit {
        // ansible-inventory warns and lists nothing
        if pattern::resolve(&inv, limit)?.is_empty() {
            for bare in crate::executor::unmatched_terms(&inv, limit) {
                eprintln!("[WARNING]: Could not match supplied host pattern, ignoring: {bare}");
            }
        }
    }
    // as ansible-inventory writes it: YAML ends with a line end, JSON and the graph do not
    // (stdout gets one)
    let document = |v: &serde_json::Value| {
        if args.yaml {
            inventory::host_yaml(v)
        } else {
            crate::jinja::value::python_indented(v)
        }
    };
    let text = if args.list {
        if args.yaml {
            inventory::list_yaml(&inv, args.limit.as_deref(), args.export)?
        } else {
            let doc = inventory::list_document(&inv, args.limit.as_deref(), args.export)?;
            document(&crate::jinja::value::shown_unsafe(&doc, true))
        }
    } else if let Some(group) = &args.graph {
        let graph = inventory::graph(&inv, group, args.vars);
        graph.ok_or_else(|| {
            usage(format!(
                "pattern must be a valid group name when using --graph: {group}"
            ))
        })?
    } else if let Some(host) = &args.host {
        // ansible-inventory's words and exit code (5); its warning names the host
        let v = inventory::host_json(&inv, host).ok_or_else(|| {
            usage(format!(
                "You must pass a single valid host to --host parameter (no host {host:?})"
            ))
        })?;
        document(&crate::jinja::value::shown_unsafe(&v, false))
    } else {
        return Err(usage("one of --list, --graph or --host is required"));
    };
    match &args.output {
        Some(path) => std::fs::write(path, &text).map_err(|e| {
            Fatal::Other(format!(
                "Unable to write to destination file '{}': {e}",
                path.display()
            ))
        })?,
        None if text.ends_with('\n') => print!("{text}"),
        None => println!("{text}"),
    }
    Ok(0)
}

/// The `-e` values merged, the later above the earlier.
fn extra_vars(run: &RunOpts) -> Result<inventory::Vars> {
    let mut extra = inventory::Vars::new();
    for e in &run.extra_vars {
        inventory::merge(&mut extra, &crate::extra_vars::parse(e)?);
    }
    Ok(extra)
}

/// Run options merged from the command line and ansible.cfg.
fn run_options(run: &RunOpts, cfg: &Config, playbook_dir: PathBuf) -> Result<RunOptions> {
    let extra = extra_vars(run)?;
    if run.forks == Some(0) {
        return Err(usage("forks must be at least 1"));
    }
    if let Some(c) = &run.connection {
        if !matches!(c.as_str(), "ssh" | "smart" | "local") {
            return Err(usage(format!(
                "connection type '{c}' is not supported by etcd-agent (ssh, smart, local)"
            )));
        }
    }
    let become_method = match run.become_method.as_ref().or(cfg.become_method.as_ref()) {
        Some(m) => crate::transport::BecomeMethod::parse(m).map_err(|e| usage(e.to_string()))?,
        None => Default::default(),
    };
    Ok(RunOptions {
        check: run.check,
        diff: run.diff,
        forks: run.forks.unwrap_or(cfg.forks).max(1),
        verbosity: run.verbose,
        extra_vars: extra,
        limit: run.limit.clone().map(|l| read_limit(&l)).transpose()?,
        remote_user: run.user.clone().or_else(|| cfg.remote_user.clone()),
        private_key: run
            .private_key
            .clone()
            .or_else(|| cfg.private_key_file.clone()),
        r#become: run.r#become || cfg.r#become,
        become_user: run.become_user.clone().or_else(|| cfg.become_user.clone()),
        become_allow_same_user: cfg.become_allow_same_user,
        run_tags: vec!["all".into()],
        skip_tags: Vec::new(),
        become_method,
        become_password: become_password(run)?,
        connection: run.connection.clone(),
        ssh_common_args: run.ssh_common_args.clone(),
        ssh_extra_args: run.ssh_extra_args.clone(),
        force_handlers: cfg.force_handlers,
        start_at_task: None,
        step: false,
        timeout: run.timeout.unwrap_or(cfg.timeout),
        host_key_checking: cfg.host_key_checking,
        playbook_dir,
        ssh_args: cfg.ssh_args.clone(),
        control_path_dir: cfg.control_path_dir.clone(),
        fact_caching: cfg.fact_caching.clone(),
        inject_facts_as_vars: cfg.inject_facts_as_vars,
        flush_cache: false,
        allow_broken_conditionals: cfg.allow_broken_conditionals,
        settings: cfg.ansible_settings(),
        inventory_sources: inventory_sources(&run.inventory, cfg),
        async_dir: cfg.async_dir.clone(),
    })
}

/// The escalation password of `--become-password-file` or `-K` (`BECOME password: `); an
/// answer ended by EOF is no password, as in Ansible.
fn become_password(run: &RunOpts) -> Result<Option<crate::secret::Secret>> {
    if run.ask_become_pass {
        return match crate::secret::ask("BECOME password: ") {
            Ok(s) if s.expose().is_empty() => Ok(None),
            Ok(s) => Ok(Some(s)),
            Err(e) => Err(Fatal::Other(e.to_string()).into()),
        };
    }
    match &run.become_password_file {
        Some(path) => crate::secret::from_file(path)
            .map(Some)
            .map_err(|e| Fatal::Other(e.to_string()).into()),
        None => Ok(None),
    }
}

fn read_limit(l: &str) -> Result<String> {
    match l.strip_prefix('@') {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| usage(format!("cannot read limit file {path}: {e}")))?;
            Ok(text
                .lines()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(","))
        }
        None => Ok(l.to_string()),
    }
}

fn load_inventory(run: &RunOpts, cfg: &Config) -> Result<Inventory> {
    let sources = inventory_sources(&run.inventory, cfg);
    if sources.is_empty() {
        return Inventory::load(&[]);
    }
    Inventory::load(&sources)
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Fatal::Other(format!("cannot start the async runtime: {e}")).into())
}

/// Checks that every task's module can be found (unknown modules are syntax errors, exit 4).
fn check_modules(pb: &Playbook, finder: &ModuleFinder) -> Result<()> {
    // every playbook read (imported ones too) brings its `library/`
    for dir in &pb.dirs {
        finder.add_plugin_dir(dir);
    }
    for play in &pb.plays {
        // the roles' `library/` directories join the search as the roles load
        for role in &play.roles {
            finder.add_role(&role.path);
        }
        for role in play.tasks.iter().filter_map(|t| t.role.as_ref()) {
            finder.add_role(&role.path);
        }
        // a templated action name is resolved per host when the task runs
        for task in play
            .tasks
            .iter()
            .filter(|t| !crate::jinja::value::is_template(&t.action))
        {
            if let Err(e) = finder.resolve_in(&task.action, &task.collections) {
                let name = task
                    .name
                    .as_ref()
                    .map(|n| format!(" in task {n:?}"))
                    .unwrap_or_default();
                return Err(syntax(format!("{}: {e}{name}", task.origin)));
            }
        }
    }
    Ok(())
}

/// Loads the run's vault secrets before any file is read.
fn vault_setup(run: &RunOpts, cfg: &Config) -> Result<()> {
    let sources = crate::vault::Sources {
        vault_ids: run.vault_id.clone(),
        password_files: run.vault_password_file.clone(),
        ask: run.ask_vault_pass,
        configured_ids: cfg.vault_identity_list.clone(),
        configured_password_file: cfg.vault_password_file.clone(),
    };
    crate::vault::set_secrets(crate::vault::load_secrets(&sources)?);
    Ok(())
}

/// A playbook argument: a file, or else a collection's playbook named by FQCN
/// (`etcd_agent.etcd.etcd_healthy`), with the collection it came from.
fn playbook_path(arg: &Path, cfg: &Config) -> (PathBuf, Option<String>) {
    if !arg.is_file() {
        if let Some(name) = arg.to_str() {
            let roots = crate::collections::roots(None, &cfg.collections_path);
            if let Some((found, coll)) = crate::collections::find_playbook(&roots, name) {
                return (found, Some(coll));
            }
        }
    }
    (arg.to_path_buf(), None)
}

/// `etcd-agent playbook`.
pub fn playbook(args: PlaybookArgs) -> Result<i32> {
    let cfg = crate::config::load()?;
    vault_setup(&args.run, &cfg)?;
    // names templated while the playbooks are parsed may use the extra vars
    let extra = extra_vars(&args.run)?;
    let mut books = Vec::new();
    let mut paths = Vec::new();
    for path in &args.playbooks {
        let (path, collection) = playbook_path(path, &cfg);
        books.push(crate::playbook::load_with(
            &path,
            collection.as_deref(),
            &extra,
        )?);
        paths.push(path);
    }
    let first_dir = paths
        .first()
        .and_then(|p| p.parent())
        .map(|p| {
            if p.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                p.to_path_buf()
            }
        })
        .unwrap_or_else(|| PathBuf::from("."));
    let playbook_dir = std::fs::canonicalize(&first_dir).unwrap_or(first_dir.clone());
    let finder = ModuleFinder::new(crate::modules::search_dirs(
        Some(&playbook_dir),
        &args.run.module_path,
        &cfg,
    ))
    .with_collections(crate::collections::roots(
        Some(&playbook_dir),
        &cfg.collections_path,
    ));
    for pb in &books {
        check_modules(pb, &finder)?;
    }
    let mut opts = run_options(&args.run, &cfg, playbook_dir.clone())?;
    opts.force_handlers |= args.force_handlers;
    opts.start_at_task = args.start_at_task.clone();
    let split_tags = |given: &[String]| -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for t in given.iter().flat_map(|t| t.split(',')).map(str::trim) {
            if !t.is_empty() && !out.iter().any(|o| o == t) {
                out.push(t.to_string());
            }
        }
        out
    };
    opts.run_tags = split_tags(&args.tags);
    if opts.run_tags.is_empty() {
        opts.run_tags.push("all".into());
    }
    opts.skip_tags = split_tags(&args.skip_tags);
    opts.step = args.step;
    opts.flush_cache = args.flush_cache;
    crate::playbook::default_gathering(&mut books, cfg.gather_by_default);
    crate::playbook::select_tags(&mut books, &args.tags, &args.skip_tags, &opts.extra_vars);
    if args.syntax_check {
        for path in &args.playbooks {
            println!("\nplaybook: {}", path.display());
        }
        return Ok(0);
    }
    let mut inv = load_inventory(&args.run, &cfg)?;
    inv.add_playbook_dir(&playbook_dir)?;
    if let Some(limit) = &opts.limit {
        let mut probe = inv.clone();
        probe.ensure_implicit_localhost();
        if pattern::resolve(&probe, limit)?.is_empty() && limit != "localhost" {
            return Err(Fatal::Other(format!(
                "Specified inventory, host pattern and/or --limit leaves us with no hosts to target: {limit}"
            ))
            .into());
        }
    }
    let lists = crate::listing::Lists {
        hosts: args.list_hosts,
        tasks: args.list_tasks,
        tags: args.list_tags,
    };
    if lists.hosts || lists.tasks || lists.tags {
        let mut probe = inv.clone();
        probe.ensure_implicit_localhost();
        let named: Vec<(crate::playbook::Playbook, PathBuf)> = books
            .into_iter()
            .zip(args.playbooks.iter().cloned())
            .collect();
        let text = crate::listing::playbooks(&named, &probe, opts.limit.as_deref(), lists)?;
        print!("{text}");
        return Ok(0);
    }
    let reporter: Box<dyn Reporter> = if args.json {
        Box::new(JsonReporter::new())
    } else {
        Box::new(
            TextReporter::stdout(opts.verbosity)
                .with_deprecation_warnings(cfg.deprecation_warnings),
        )
    };
    let rt = runtime()?;
    let mut engine = Engine::new(inv, opts, finder, reporter)?;
    let shared = engine.shared();
    let code = rt.block_on(async {
        let run = async {
            let mut code = 0;
            for (pb, path) in books.iter().zip(&args.playbooks) {
                engine.playbook_start(&path.display().to_string(), pb.plays.len());
                code = engine.run(pb).await;
                if code != 0 {
                    break;
                }
            }
            if let Some(name) = engine.start_at_unmatched() {
                // ansible-playbook's words; the exit code is the run's
                eprintln!(
                    "[ERROR]: No matching task \"{name}\" found. Note: --start-at-task can only follow static includes."
                );
            }
            code
        };
        interruptible(run, shared).await
    });
    Ok(code)
}

/// Runs `work`; on Ctrl-C or SIGTERM stops it and cleans up (see [`crate::signals`]).
async fn interruptible(
    work: impl std::future::Future<Output = i32>,
    shared: std::sync::Arc<crate::executor::Shared>,
) -> i32 {
    let last = shared.clone();
    crate::signals::interruptible(work, &shared.pool, move || last.pool.stop_now()).await
}

/// `etcd-agent adhoc`: one task on the hosts matching a pattern, shown as `ansible` shows it.
pub fn adhoc(args: AdhocArgs) -> Result<i32> {
    let cfg = crate::config::load()?;
    vault_setup(&args.run, &cfg)?;
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let finder = ModuleFinder::new(crate::modules::search_dirs(
        Some(&cwd),
        &args.run.module_path,
        &cfg,
    ))
    .with_collections(crate::collections::roots(Some(&cwd), &cfg.collections_path));
    finder.resolve(&args.module).map_err(syntax)?;
    let opts = run_options(&args.run, &cfg, cwd.clone())?;
    let inv = load_inventory(&args.run, &cfg)?;
    if args.list_hosts {
        let mut probe = inv.clone();
        probe.ensure_implicit_localhost();
        let hosts = crate::executor::play_hosts(&probe, &args.pattern, opts.limit.as_deref())?;
        if hosts.is_empty() {
            for bare in crate::executor::unmatched_terms(&probe, &args.pattern) {
                eprintln!("[WARNING]: Could not match supplied host pattern, ignoring: {bare}");
            }
            eprintln!("[WARNING]: No hosts matched, nothing to do");
        }
        print!("{}", crate::listing::adhoc_hosts(&hosts));
        return Ok(0);
    }
    let text = format!(
        "- hosts: {pattern:?}\n  gather_facts: false\n  name: {title:?}\n  tasks:\n    - name: {module:?}\n      {module}: {margs}\n",
        pattern = args.pattern,
        title = format!("Ansible Ad-Hoc"),
        module = args.module,
        margs = serde_json::to_string(&args.args).unwrap_or_default(),
    );
    let dir =
        tempfile::tempdir().map_err(|e| Fatal::Other(format!("cannot create temp dir: {e}")))?;
    let path = dir.path().join("adhoc.yml");
    std::fs::write(&path, text)
        .map_err(|e| Fatal::Other(format!("cannot write {}: {e}", path.display())))?;
    let pb = crate::playbook::load(&path)?;
    let mut probe = inv.clone();
    probe.ensure_implicit_localhost();
    if crate::executor::play_hosts(&probe, &args.pattern, opts.limit.as_deref())?.is_empty() {
        return Err(
            Fatal::Other(format!("no hosts matched the pattern {:?}", args.pattern)).into(),
        );
    }
    let reporter: Box<dyn Reporter> = if args.json {
        Box::new(JsonReporter::new())
    } else {
        Box::new(AdhocReporter)
    };
    let rt = runtime()?;
    let mut engine = Engine::new(inv, opts, finder, reporter)?;
    let shared = engine.shared();
    Ok(rt.block_on(interruptible(engine.run(&pb), shared)))
}
