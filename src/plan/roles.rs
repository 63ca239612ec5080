//! What each matrix axis sets, read from the fields whose templates use it:
//! the axis `load.users` or `load.rate` reads is the load, the one
//! `system.replicas` reads the replicas, the one `load.workers` reads the
//! workers. An axis's name means nothing; an axis no such field reads has
//! no role.

use indexmap::IndexMap;
use minijinja::Environment;

use super::raw::{RawPlan, SearchOver};
use super::spanned::Scalar;

/// What a matrix axis sets in every cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Replicas,
    Workers,
    Users,
    Rate,
    Other,
}

impl Role {
    /// Axes that set the offered load rather than the resources serving it.
    pub(crate) fn is_load(self) -> bool {
        matches!(self, Role::Users | Role::Rate)
    }
}

/// The role of each axis that has one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Roles {
    of: IndexMap<String, Role>,
}

impl Roles {
    /// `axis`'s role; [`Role::Other`] for an axis no role field reads.
    pub fn of(&self, axis: &str) -> Role {
        self.of.get(axis).copied().unwrap_or(Role::Other)
    }

    /// These roles with `axis` set to `role`, for a caller that knows them
    /// without a plan (rows built by hand).
    pub fn with(mut self, axis: impl Into<String>, role: Role) -> Roles {
        self.of.insert(axis.into(), role);
        self
    }

    /// The first of `axes` with `role`.
    pub fn find<'a>(&self, axes: &'a [String], role: Role) -> Option<&'a String> {
        axes.iter().find(|a| self.of(a) == role)
    }

    /// Read from the raw plan: the matrix axes each role field's template
    /// reads (`matrix.pods`; vars do not see the matrix). An axis read by
    /// more than one takes the first of replicas, workers, users and rate:
    /// an axis that scales the service and its load together is judged as
    /// a resource.
    pub(crate) fn resolve(raw: &RawPlan, env: &Environment<'static>) -> Roles {
        let axes: Vec<&String> = raw
            .matrix
            .as_ref()
            .map(|m| m.axes.keys().collect())
            .unwrap_or_default();
        let fields = [
            (Role::Replicas, Some(&raw.system.replicas.raw)),
            (Role::Workers, Some(&raw.load.workers.raw)),
            (Role::Users, raw.load.users.as_ref().map(|t| &t.raw)),
            (Role::Rate, raw.load.rate.as_ref().map(|t| &t.raw)),
        ];
        let mut roles = Roles::default();
        for (role, value) in fields {
            let Some(Scalar::Str(text)) = value else {
                continue;
            };
            for axis in matrix_reads(env, text) {
                if axes.contains(&&axis) && !roles.of.contains_key(&axis) {
                    roles.of.insert(axis, role);
                }
            }
        }
        // A search's probes set the load: its row axis is named for it.
        if let Some(search) = &raw.search {
            let role = match search.over.value {
                SearchOver::Users => Role::Users,
                SearchOver::Rate => Role::Rate,
            };
            roles
                .of
                .entry(search.over.value.as_str().to_string())
                .or_insert(role);
        }
        roles
    }
}

/// The matrix axes a template reads.
fn matrix_reads(env: &Environment<'static>, text: &str) -> Vec<String> {
    let mut out: Vec<String> = variables(env, text)
        .into_iter()
        .filter_map(|n| n.strip_prefix("matrix.").map(str::to_string))
        .collect();
    out.sort();
    out
}

/// The dotted names a template reads (`matrix.pods`); none when it does not
/// parse (resolving reports that).
fn variables(env: &Environment<'static>, text: &str) -> Vec<String> {
    env.template_from_str(text)
        .map(|t| t.undeclared_variables(true).into_iter().collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(matrix: &str, system: &str, load: &str) -> Roles {
        let text = format!(
            "name = \"roles\"\n[matrix]\n{matrix}\n[system]\nbackend = \"none\"\n{system}\n\
             [load]\nbase_url = \"http://127.0.0.1:9\"\n{load}\n\
             [[load.request]]\npath = \"/\"\n"
        );
        crate::plan::load_str(std::path::Path::new("p.toml"), &text, Default::default())
            .unwrap_or_else(|e| panic!("{}", e.render()))
            .roles
    }

    #[test]
    fn an_axis_takes_the_role_of_the_field_that_reads_it() {
        let r = roles(
            "pods = [1, 2]\nclients = [1, 8]\nthreads = [1, 2]\nusers = [3, 4]",
            "replicas = \"{{ matrix.pods }}\"",
            "users = \"{{ matrix.clients * 10 }}\"\nworkers = \"{{ matrix.threads }}\"",
        );
        assert_eq!(r.of("pods"), Role::Replicas);
        assert_eq!(r.of("clients"), Role::Users);
        assert_eq!(r.of("threads"), Role::Workers);
        // Named like the load, read by nothing.
        assert_eq!(r.of("users"), Role::Other);
        assert_eq!(r.of("absent"), Role::Other);
    }

    #[test]
    fn an_axis_a_literal_field_does_not_read_has_no_role() {
        let r = roles(
            "clients = [1, 8]\nreplicas = [1, 2]",
            "replicas = 2",
            "rate = \"{% if matrix.clients > 1 %}80{% else %}10{% endif %}\"",
        );
        assert_eq!(r.of("clients"), Role::Rate);
        assert_eq!(r.of("replicas"), Role::Other);
    }

    #[test]
    fn an_axis_that_scales_service_and_load_together_is_a_resource() {
        let r = roles(
            "size = [1, 2]",
            "replicas = \"{{ matrix.size }}\"",
            "users = \"{{ matrix.size * 8 }}\"",
        );
        assert_eq!(r.of("size"), Role::Replicas);
    }
}
