//! Agency templates: built into the binary from `templates/`, overridden by a
//! workspace's own `templates/<Name>/`.

use std::fs;
use std::path::{Path, PathBuf};

use include_dir::{include_dir, Dir};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::model::spec::{validate_name, AgencySpec, AgentSpec};
use crate::model::Layout;

static BUILTIN: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/templates");

/// The template used when no template matches the agency's name.
pub const GENERIC: &str = "Generic";

/// Role file for a specialist the template does not describe (`--agents`).
const SPECIALIST_SKELETON: &str = "_specialist.md";

#[derive(Debug, Clone, Serialize)]
pub struct TemplateInfo {
    pub name: String,
    pub description: String,
    pub coordinator: String,
    pub agents: Vec<String>,
    pub capabilities: Vec<String>,
    /// `builtin` or `workspace`.
    pub source: &'static str,
}

/// A template's files, relative path → contents.
pub struct Template {
    pub spec: AgencySpec,
    files: Vec<(PathBuf, Vec<u8>)>,
    source: &'static str,
}

impl Template {
    pub fn info(&self) -> TemplateInfo {
        TemplateInfo {
            name: self.spec.name.clone(),
            description: self.spec.description.clone(),
            coordinator: self.spec.coordinator.name.clone(),
            agents: self.spec.agents.iter().map(|a| a.name.clone()).collect(),
            capabilities: self.spec.capabilities.clone(),
            source: self.source,
        }
    }

    fn file(&self, rel: &str) -> Option<&[u8]> {
        self.files
            .iter()
            .find(|(p, _)| p == Path::new(rel))
            .map(|(_, b)| b.as_slice())
    }
}

fn builtin(name: &str) -> Option<Template> {
    let dir = BUILTIN.get_dir(name)?;
    let mut files = Vec::new();
    collect_builtin(dir, &mut files);
    let strip = |p: &Path| p.strip_prefix(name).unwrap_or(p).to_path_buf();
    let files: Vec<_> = files.into_iter().map(|(p, b)| (strip(&p), b)).collect();
    from_files(files, "builtin")
}

fn collect_builtin(dir: &Dir<'static>, out: &mut Vec<(PathBuf, Vec<u8>)>) {
    for f in dir.files() {
        out.push((f.path().to_path_buf(), f.contents().to_vec()));
    }
    for d in dir.dirs() {
        collect_builtin(d, out);
    }
}

fn from_workspace(dir: &Path) -> Result<Option<Template>> {
    if !dir.join("agency.json").is_file() {
        return Ok(None);
    }
    let mut files = Vec::new();
    collect_disk(dir, dir, &mut files)?;
    Ok(from_files(files, "workspace"))
}

fn collect_disk(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) -> Result<()> {
    for entry in fs::read_dir(dir).map_err(|e| Error::io(dir.display(), e))? {
        let entry = entry.map_err(|e| Error::io(dir.display(), e))?;
        let path = entry.path();
        let kind = entry
            .file_type()
            .map_err(|e| Error::io(path.display(), e))?;
        // Templates are copied as they are: a link would copy whatever it
        // points at (or loop), so none is followed.
        if kind.is_symlink() {
            return Err(Error::user(
                format!("the template file {} is a symbolic link", path.display()),
                "replace the link by the file itself",
            ));
        }
        if kind.is_dir() {
            collect_disk(root, &path, out)?;
        } else {
            let bytes = fs::read(&path).map_err(|e| Error::io(path.display(), e))?;
            out.push((
                path.strip_prefix(root).unwrap_or(&path).to_path_buf(),
                bytes,
            ));
        }
    }
    Ok(())
}

fn from_files(files: Vec<(PathBuf, Vec<u8>)>, source: &'static str) -> Option<Template> {
    let json = files.iter().find(|(p, _)| p == Path::new("agency.json"))?;
    let spec: AgencySpec = serde_json::from_slice(&json.1).ok()?;
    Some(Template {
        spec,
        files,
        source,
    })
}

/// Every template, workspace ones replacing built-ins of the same name.
pub fn list(workspace_templates: &Path) -> Result<Vec<TemplateInfo>> {
    let mut names: Vec<String> = BUILTIN
        .dirs()
        .filter_map(|d| d.path().to_str().map(str::to_string))
        .collect();
    if let Ok(entries) = fs::read_dir(workspace_templates) {
        for e in entries.flatten() {
            if e.path().join("agency.json").is_file() {
                names.push(e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    names.sort();
    names.dedup();
    let mut out = Vec::new();
    for n in names {
        if let Some(t) = find(workspace_templates, &n)? {
            out.push(t.info());
        }
    }
    Ok(out)
}

/// The template called `name` (case-insensitive), workspace first.
pub fn find(workspace_templates: &Path, name: &str) -> Result<Option<Template>> {
    if let Ok(entries) = fs::read_dir(workspace_templates) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().eq_ignore_ascii_case(name) {
                if let Some(t) = from_workspace(&e.path())? {
                    return Ok(Some(t));
                }
            }
        }
    }
    let builtin_name = BUILTIN
        .dirs()
        .filter_map(|d| d.path().to_str())
        .find(|n| n.eq_ignore_ascii_case(name));
    Ok(builtin_name.and_then(builtin))
}

/// What `create` may change about a template.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub agents: Option<Vec<String>>,
    pub coordinator: Option<String>,
    pub capabilities: Option<Vec<String>>,
    pub agent_command: Option<String>,
    pub layout: Option<Layout>,
}

/// The spec an agency called `name` gets from `template` with `overrides`.
pub fn instantiate(template: &Template, name: &str, o: &Overrides) -> Result<AgencySpec> {
    let mut spec = template.spec.clone();
    spec.template = spec.name.clone();
    spec.name = name.to_string();
    if let Some(c) = &o.coordinator {
        validate_name("coordinator", c)?;
        spec.coordinator.name = c.clone();
    }
    if let Some(caps) = &o.capabilities {
        spec.capabilities = caps.clone();
    }
    if let Some(names) = &o.agents {
        let old = std::mem::take(&mut spec.agents);
        for n in names {
            validate_name("agent", n)?;
            let agent = old
                .iter()
                .find(|a| &a.name == n)
                .cloned()
                .unwrap_or(AgentSpec {
                    name: n.clone(),
                    title: n.replace(['-', '_'], " "),
                    role_file: format!("agents/{n}.md"),
                    command: None,
                    profile: None,
                    worktree: None,
                    permissions: None,
                });
            spec.agents.push(agent);
        }
    }
    if let Some(cmd) = &o.agent_command {
        spec.coordinator.command = Some(cmd.clone());
        for a in &mut spec.agents {
            a.command = Some(cmd.clone());
        }
    }
    if let Some(l) = o.layout {
        spec.layout = Some(l);
    }
    spec.validate()?;
    Ok(spec)
}

/// Writes the agency folder for `spec` into `dir` (which must not exist yet):
/// `agency.json`, briefings with placeholders filled in, scripts, `logs/`.
pub fn write_agency(template: &Template, spec: &AgencySpec, dir: &Path) -> Result<()> {
    let fill = |bytes: &[u8], agent: &str, title: &str| -> Vec<u8> {
        String::from_utf8_lossy(bytes)
            .replace("{{AGENCY}}", &spec.name)
            .replace("{{COORDINATOR}}", &spec.coordinator.name)
            .replace("{{AGENT}}", agent)
            .replace("{{TITLE}}", title)
            .replace("{{CAPABILITIES}}", &spec.capabilities.join(", "))
            .replace(
                "{{AGENTS}}",
                &spec
                    .agents
                    .iter()
                    .map(|a| format!("`{}` ({})", a.name, a.title))
                    .collect::<Vec<_>>()
                    .join(", "),
            )
            .into_bytes()
    };
    let write = |rel: &Path, bytes: &[u8]| -> Result<()> {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| Error::io(parent.display(), e))?;
        }
        fs::write(&path, bytes).map_err(|e| Error::io(path.display(), e))?;
        if rel.starts_with("scripts") {
            crate::workspace::set_executable(&path)?;
        }
        Ok(())
    };
    fs::create_dir_all(dir.join("logs")).map_err(|e| Error::io(dir.display(), e))?;
    // Scripts and other shared files come over as they are.
    for (rel, bytes) in &template.files {
        let is_briefing = rel.extension().is_some_and(|e| e == "md")
            && (rel.starts_with("agents") || rel == Path::new("coordinator.md"));
        if rel == Path::new("agency.json") || is_briefing {
            continue;
        }
        write(rel, bytes)?;
    }
    let coordinator = template
        .file(&spec.coordinator.role_file)
        .unwrap_or(b"# {{AGENCY}} coordinator\n");
    write(
        Path::new(&spec.coordinator.role_file),
        &fill(coordinator, "coordinator", &spec.coordinator.title),
    )?;
    let skeleton = generic_specialist();
    for a in &spec.agents {
        let text = template.file(&a.role_file).unwrap_or(&skeleton);
        write(Path::new(&a.role_file), &fill(text, &a.name, &a.title))?;
    }
    Ok(spec.save(dir)?)
}

fn generic_specialist() -> Vec<u8> {
    BUILTIN
        .get_file(SPECIALIST_SKELETON)
        .map(|f| f.contents().to_vec())
        .unwrap_or_else(|| b"# {{AGENT}} in {{AGENCY}}\n".to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_valid() {
        let empty = tempfile::tempdir().unwrap();
        let all = list(empty.path()).unwrap();
        let names: Vec<&str> = all.iter().map(|t| t.name.as_str()).collect();
        for want in [
            "CodeAgency",
            "QAAgency",
            "DevOpsAgency",
            "SecurityAgency",
            "DocsAgency",
            GENERIC,
        ] {
            assert!(names.contains(&want), "missing template {want}: {names:?}");
        }
        for t in &all {
            let tpl = find(empty.path(), &t.name).unwrap().unwrap();
            tpl.spec.validate().unwrap();
            for a in &tpl.spec.agents {
                assert!(
                    tpl.file(&a.role_file).is_some(),
                    "{}: {}",
                    t.name,
                    a.role_file
                );
            }
            assert!(tpl.file(&tpl.spec.coordinator.role_file).is_some());
        }
    }

    #[test]
    fn agents_override_keeps_known_and_adds_new() {
        let empty = tempfile::tempdir().unwrap();
        let t = find(empty.path(), "codeagency").unwrap().unwrap();
        let o = Overrides {
            agents: Some(vec!["python-agent".into(), "rust-agent".into()]),
            ..Default::default()
        };
        let spec = instantiate(&t, "X", &o).unwrap();
        let names: Vec<&str> = spec.agents.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["python-agent", "rust-agent"]);
        assert_eq!(spec.template, "CodeAgency");
        let bad = Overrides {
            agents: Some(vec!["a.b".into()]),
            ..Default::default()
        };
        assert!(instantiate(&t, "X", &bad).is_err());
    }
}
