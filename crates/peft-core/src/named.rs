//! [`Named`]: modules of one kind kept by name, each a child module named after it.
//!
//! Used for task heads (`heads.<name>.…`), so one model answers several tasks.

use burn::module::{
    Content, Devices, Module, ModuleDisplay, ModuleDisplayDefault, ModuleMapper, ModuleVisitor,
};
use burn::tensor::Device;

use crate::error::{PeftError, Result};

/// Modules kept by name, in insertion order, each with metadata `T` (e.g. the config it was
/// built from). Module paths are `<field>.<name>.…`.
#[derive(Debug, Clone)]
pub struct Named<M, T = ()> {
    entries: Vec<(String, T, M)>,
}

impl<M, T> Default for Named<M, T> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
        }
    }
}

impl<M, T> Named<M, T> {
    /// No entries.
    pub fn new() -> Self {
        Self::default()
    }

    /// The module named `name`.
    pub fn get(&self, name: &str) -> Option<&M> {
        self.entries
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, _, m)| m)
    }

    /// Module `name` with what is kept about it.
    pub fn entry(&self, name: &str) -> Option<(&T, &M)> {
        Some((self.meta(name)?, self.get(name)?))
    }

    /// The module named `name`, mutable.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut M> {
        self.entries
            .iter_mut()
            .find(|(n, _, _)| n == name)
            .map(|(_, _, m)| m)
    }

    /// The module named `name`, or a [`PeftError::NotFound`] listing the names there are.
    pub fn require(&self, kind: &'static str, name: &str) -> Result<&M> {
        self.get(name).ok_or_else(|| PeftError::NotFound {
            kind,
            name: name.to_string(),
            available: if self.entries.is_empty() {
                format!("no {kind}s")
            } else {
                self.names().join(", ")
            },
        })
    }

    /// Add `module` as `name`; an error if the name is taken or not a valid name.
    pub fn insert(&mut self, kind: &'static str, name: &str, meta: T, module: M) -> Result<()> {
        crate::setup::check_name(name)?;
        if self.get(name).is_some() {
            return Err(PeftError::AlreadyExists {
                kind,
                name: name.to_string(),
            });
        }
        self.entries.push((name.to_string(), meta, module));
        Ok(())
    }

    /// Add or replace `module` as `name` (the name is not checked).
    pub(crate) fn put(&mut self, name: &str, meta: T, module: M) {
        self.remove(name);
        self.entries.push((name.to_string(), meta, module));
    }

    /// Remove and return the module named `name`.
    pub fn remove(&mut self, name: &str) -> Option<M> {
        let i = self.entries.iter().position(|(n, _, _)| n == name)?;
        Some(self.entries.remove(i).2)
    }

    /// Keep only the entries for which `keep(name, meta)` holds.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&str, &T) -> bool) {
        self.entries.retain(|(n, t, _)| keep(n, t));
    }

    /// The metadata of `name`.
    pub fn meta(&self, name: &str) -> Option<&T> {
        self.entries
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, t, _)| t)
    }

    /// The names, in insertion order.
    pub fn names(&self) -> Vec<String> {
        self.entries.iter().map(|(n, _, _)| n.clone()).collect()
    }

    /// `(name, metadata, module)` triples.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &T, &M)> {
        self.entries.iter().map(|(n, t, m)| (n.as_str(), t, m))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn map_all(mut self, mut f: impl FnMut(M) -> M) -> Self {
        self.entries = self
            .entries
            .into_iter()
            .map(|(n, t, m)| (n, t, f(m)))
            .collect();
        self
    }
}

impl<M: Module + Clone + std::fmt::Debug + Send, T: Clone + std::fmt::Debug + Send> Module
    for Named<M, T>
{
    fn collect_devices(&self, mut devices: Devices) -> Devices {
        for (_, _, m) in &self.entries {
            devices = m.collect_devices(devices);
        }
        devices
    }

    fn fork(self, device: &Device) -> Self {
        self.map_all(|m| m.fork(device))
    }

    fn to_device(self, device: &Device) -> Self {
        self.map_all(|m| m.to_device(device))
    }

    fn train(self) -> Self {
        self.map_all(Module::train)
    }

    fn valid(&self) -> Self {
        Self {
            entries: self
                .entries
                .iter()
                .map(|(n, t, m)| (n.clone(), t.clone(), m.valid()))
                .collect(),
        }
    }

    fn materialize(self) -> Self {
        self.map_all(Module::materialize)
    }

    fn num_params(&self) -> usize {
        self.entries.iter().map(|(_, _, m)| m.num_params()).sum()
    }

    fn visit<V: ModuleVisitor>(&self, visitor: &mut V) {
        for (name, _, m) in &self.entries {
            visitor.enter_module(name, "Named");
            m.visit(visitor);
            visitor.exit_module(name, "Named");
        }
    }

    fn map<Mp: ModuleMapper>(mut self, mapper: &mut Mp) -> Self {
        self.entries = self
            .entries
            .into_iter()
            .map(|(name, t, m)| {
                mapper.enter_module(&name, "Named");
                let m = m.map(mapper);
                mapper.exit_module(&name, "Named");
                (name, t, m)
            })
            .collect();
        self
    }
}

impl<M: ModuleDisplay, T> ModuleDisplayDefault for Named<M, T> {
    fn content(&self, content: Content) -> Option<Content> {
        self.entries
            .iter()
            .fold(content, |acc, (n, _, m)| acc.add(n, m))
            .set_top_level_type("Named")
            .optional()
    }
}

impl<M: ModuleDisplay, T> ModuleDisplay for Named<M, T> {}
