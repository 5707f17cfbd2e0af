"""A session's workspace: its runs kept in the server's run store, brought back from the
address bar, opened by share links, and the address bar kept in step with the session.

The workspace token in the address bar is the only key to a workspace's runs: the
store keeps its hash, lists nothing across workspaces, and a share link opens one
run (read-only) by a token of its own. Nothing here ever fails a page: a store that
cannot be read or written costs the session its history, with a message, not its run.
"""

from __future__ import annotations

import dataclasses
import urllib.parse
from collections.abc import Callable

import streamlit as st

from app import address, choices, jobs, runs, settings, state
from mlcore import config, metrics, runstore, store

STORE_ERRORS = (runstore.StoreError, store.BundleError, OSError)
EXPIRED = (
    "This share link is unknown or has expired: the run may have been deleted, or dropped when the server's "
    "run store made room for newer runs (a restart of a Community Cloud app also clears it). Ask for a new "
    "link, or for the run's bundle, which keeps it for good."
)


@st.cache_resource(show_spinner=False)
def _open_store(root: str, max_runs: int, max_bytes: int) -> runstore.RunStore:
    """One store object per folder and process: its lock orders the writes of every session."""
    return runstore.RunStore(root, max_runs=max_runs, max_bytes=max_bytes)


def run_store() -> runstore.RunStore | None:
    """The server's run store, or ``None`` where the deployment turned it off."""
    root = settings.run_store_dir()
    if root is None:
        return None
    max_runs, max_bytes = settings.run_store_limits()
    return _open_store(str(root), max_runs, max_bytes)


def _model_loader(run_store_: runstore.RunStore, run_id: str) -> Callable[[], object]:
    def load():
        jobs.prepare_keras()
        try:
            return store.load_bundle(run_store_.bundle_path(run_id)).model
        except store.BundleError as error:
            raise store.BundleError(f"The stored model could not be read: {error}") from error

    return load


def _stored_run(run_store_: runstore.RunStore, run_id: str, *, shared: bool = False) -> runs.Run:
    """A run read back from the store; raises one of :data:`STORE_ERRORS`."""
    return runs.from_stored(run_store_.load(run_id), _model_loader(run_store_, run_id), shared=shared)


# --- a new session -------------------------------------------------------------------------


def start() -> None:
    """Once per session: its workspace (from the address bar, or a new one), a shared run the
    address opens, and the settings and thresholds the address carries."""
    if state.workspace_token() is not None:
        return
    params = address.read()
    token = params.get(address.WORKSPACE, "")
    if not runstore.looks_like_token(token):
        if token:
            state.post_notice("warning", "The workspace key in this address is not valid: this is a new workspace.")
        token = runstore.new_token()
    state.set_workspace(token)
    _restore(token)
    if share := params.get(address.SHARE):
        _open_shared(share)
    _apply_setup(params)


def refresh() -> None:
    """Add the workspace's stored runs this session does not hold yet (one whose training went on
    while the page was reloaded, or one kept by another tab), without changing the active run."""
    _restore(state.workspace_token(), activate=False)


def _restore(token: str, *, activate: bool = True) -> None:
    run_store_ = run_store()
    if run_store_ is None:
        return
    try:
        entries, problems = run_store_.workspace_runs(token)
    except OSError as error:
        state.post_notice("error", f"The run store could not be read ({error}); runs are kept for this session only.")
        return
    held = {run.stored.run_id for run in state.all_runs() if run.stored is not None and not run.read_only}
    for entry in entries:
        if entry.run_id in held:
            continue
        try:
            state.add_run(_stored_run(run_store_, entry.run_id), activate=activate)
        except Exception as error:  # damage of any kind costs that run, never the session
            problems.append(f"Stored run {entry.name!r} could not be read and was skipped ({error}).")
    for problem in problems if activate else ():  # said once, when the session starts
        state.post_notice("warning", problem)


def _open_shared(token: str) -> None:
    run_store_ = run_store()
    entry = run_store_.find_shared(token) if run_store_ is not None else None
    if entry is None:
        state.post_notice("error", EXPIRED)
        return
    own = next((run for run in state.all_runs() if run.stored and run.stored.run_id == entry.run_id), None)
    if own is not None:  # the owner opened their own link
        state.set_active(own.id)
        return
    try:
        state.add_run(_stored_run(run_store_, entry.run_id, shared=True))
    except Exception as error:  # damage of any kind: a message, never a broken page
        state.post_notice("error", f"The shared run could not be read ({error}).")
        return


def _apply_setup(params: dict[str, str]) -> None:
    setup = address.decode(params)
    problems = list(setup.problems)
    if setup.data_config is not None:
        if problem := choices.data_problem(setup.data_config):
            problems.append(f"the data settings were not used: {problem}.")
        else:
            state.set_data_config(setup.data_config)
    if setup.train_config is not None:
        if problem := choices.train_problem(setup.train_config):
            problems.append(f"the training settings were not used: {problem}.")
        else:
            state.set_train_config(setup.train_config)
    wanted = params.get(address.ACTIVE)
    if wanted and state.run_by_id(wanted) is not None:
        state.set_active(wanted)
    elif setup.thresholds and state.all_runs():  # meant for a run that is gone: never put on another one
        problems.append("its thresholds belong to a run that is not in this workspace.")
        return _report(problems)
    run = state.active_run()
    if run is not None and not run.read_only:
        values = {label: value for label, value in setup.thresholds.items() if label in run.label_names}
        changed = {label: value for label, value in values.items() if state.thresholds(run)[label] != value}
        if changed:
            state.set_thresholds(run, changed, metrics.threshold_origin("manual", split=state.eval_split()))
    _report(problems)


def _report(problems: list[str]) -> None:
    for problem in problems:
        state.post_notice("warning", f"Part of this address was not used: {problem}")


# --- every page ----------------------------------------------------------------------------


def sync() -> None:
    """After the session's state changed: store the active run's new thresholds and make the
    address bar show the setup."""
    run = state.active_run()
    if run is not None and run.stored is not None and not run.read_only:
        _save_thresholds(run)
    params = {address.WORKSPACE: state.workspace_token()}
    if shared := state.shared_token():
        params[address.SHARE] = shared
    if run is not None:
        params[address.ACTIVE] = run.id
    thresholds = state.thresholds(run) if run is not None else {}
    params.update(address.encode(state.data_config(), state.train_config(), thresholds))
    address.write(params)


def _save_thresholds(run: runs.Run) -> None:
    current = (state.thresholds(run), state.threshold_origins(run))
    if current == state.saved_thresholds(run) or (run_store_ := run_store()) is None:
        return
    try:
        run_store_.set_thresholds(state.workspace_token(), run.stored.run_id, *current)
    except STORE_ERRORS as error:
        state.post_notice("warning", f"The new thresholds are kept for this session only ({error}).")
    state.mark_thresholds_saved(run, current)


def ensure_model(run: runs.Run) -> bool:
    """Read a stored run's model before a page uses it; ``False`` (with a message) when it cannot be read."""
    if run.model_ref.loaded:
        return True
    try:
        with st.spinner("Loading the model…"):
            run.model_ref.get()
    except (store.BundleError, OSError) as error:
        st.error(f"{error} The run's numbers are still shown; its model cannot be used.")
        return False
    return True


# --- keeping, renaming, deleting and sharing runs ----------------------------------------------


def keeper() -> jobs.Keeper:
    """A function that stores a run in this session's workspace (safe to call from a worker thread)."""
    run_store_, token = run_store(), state.workspace_token()

    def keep(run: runs.Run, bundle: bytes | None = None) -> tuple[runs.Run, str | None]:
        if run_store_ is None:
            return run, None
        try:
            data = bundle if bundle is not None else runs.bundle_bytes(run, run.default_thresholds)
            entry = run_store_.save(
                token,
                name=run.name or run.title,
                source=run.source,
                bundle=data,
                scores=runs.split_scores(run),
                thresholds=run.default_thresholds,
                threshold_origin=run.default_origins,
            )
        except STORE_ERRORS as error:
            return run, f"This run is kept for this session only: the run store could not keep it ({error})."
        reference = runs.ModelRef(run.model_ref.get(), load=_model_loader(run_store_, entry.run_id))
        stored = runs.Stored(entry.run_id, entry.share_token, entry.source)
        return dataclasses.replace(run, model_ref=reference, stored=stored, name=entry.name, id=entry.run_id), None

    return keep


def keep_bundle(run: runs.Run, data: bytes) -> None:
    """Store a run just loaded from an uploaded bundle, as it was uploaded."""
    stored, problem = keeper()(run, data)
    if stored is not run:  # it has the store's id now, as it will have after a restart
        state.remove_run(run.id)
        state.add_run(stored)
    if problem:
        state.post_notice("warning", problem)


def keep_scores(run: runs.Run) -> None:
    """Store the probabilities of a run scored after it was stored (a loaded bundle)."""
    if run.stored is None or run.read_only or (run_store_ := run_store()) is None:
        return
    try:
        scored_on = config.to_dict(run.data_config) if run.data_config is not None else None
        run_store_.set_scores(state.workspace_token(), run.stored.run_id, runs.split_scores(run), scored_on)
    except STORE_ERRORS as error:
        state.post_notice("warning", f"The scores are kept for this session only ({error}).")


def rename(run: runs.Run, name: str) -> None:
    name = " ".join(name.split())[: runstore.MAX_NAME]
    if not name or name == run.name or run.read_only:
        return
    if run.stored is not None and (run_store_ := run_store()) is not None:
        try:
            run_store_.rename(state.workspace_token(), run.stored.run_id, name)
        except STORE_ERRORS as error:
            state.post_notice("warning", f"The new name is kept for this session only ({error}).")
    state.replace_run(run, dataclasses.replace(run, name=name))


def delete(run: runs.Run) -> None:
    """Delete a run from the workspace and the store (a shared run only leaves this session)."""
    if run.stored is not None and not run.read_only and (run_store_ := run_store()) is not None:
        try:
            run_store_.delete(state.workspace_token(), run.stored.run_id)
        except STORE_ERRORS as error:
            state.post_notice("warning", f"The run could not be removed from the store ({error}).")
    state.remove_run(run.id)


def copy_shared(run: runs.Run) -> None:
    """Copy a shared run into this session's workspace, where it can be tuned."""
    run_store_ = run_store()
    if run_store_ is None or run.stored is None:
        return
    try:
        entry = run_store_.save(
            state.workspace_token(),
            name=run.name or run.title,
            source=run.stored.source,
            bundle=run_store_.bundle_path(run.stored.run_id).read_bytes(),
            scores=runs.split_scores(run),
            thresholds=state.thresholds(run),
            threshold_origin=state.threshold_origins(run),
            scored_on=config.to_dict(run.data_config) if run.data_config is not None else None,
        )
        state.add_run(_stored_run(run_store_, entry.run_id))
    except Exception as error:  # damage of any kind: a message, never a broken page
        state.post_notice("error", f"The run could not be copied ({error}).")


def bundle_maker(run: runs.Run, thresholds: dict[str, float], origins: dict[str, dict]) -> Callable[[], bytes]:
    """What makes the run's bundle with these thresholds when a download asks for it (outside the script
    run, so the store is looked up now). A stored run's model file is copied, never loaded and saved again."""
    run_store_ = run_store()
    path = run_store_.bundle_path(run.stored.run_id) if run.stored is not None and run_store_ is not None else None

    def make() -> bytes:
        if path is not None:
            try:
                return store.with_metadata(path, runs.bundle_metadata(run, thresholds, origins))
            except (store.BundleError, OSError):
                pass  # dropped or damaged meanwhile: save the model the session holds
        return runs.bundle_bytes(run, thresholds, origins)

    return make


def share_link(run: runs.Run) -> str | None:
    """The address that opens ``run`` read-only for anyone who has it (``None``: not stored)."""
    if run.stored is None:
        return None
    return f"{st.context.url or ''}?{address.SHARE}={run.stored.share_token}"


def setup_link() -> str:
    """This page's address with the settings and thresholds but without the workspace key: it gives
    the setup, not the runs."""
    params = {
        key: value
        for key, value in address.read().items()
        if key not in address.PRIVATE and not key.startswith(address.THRESHOLD_PREFIX)
    }
    return f"{st.context.url or ''}?{urllib.parse.urlencode(params)}"
