# SPDX-License-Identifier: MIT
"""The object store: one global, increasing resourceVersion (like etcd's
revision), every write recorded as a watch event, bounded history.

Keys: resource key (`apps/deployments`, `/pods`), namespace ("" for
cluster-scoped), name. Objects are plain dicts; the store hands out and
takes deep copies, so callers never share state with it.
"""

import collections
import copy
import threading


class Expired(Exception):
    """The requested resourceVersion is older than the kept history."""

    def __init__(self, requested, oldest):
        super().__init__(f"too old resource version: {requested} "
                         f"({oldest})")
        self.requested = requested
        self.oldest = oldest


Event = collections.namedtuple("Event", "rv key ns type obj old")


class Store:
    def __init__(self, history=2000, first_rv=1000):
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.rv = first_rv
        self.objects = {}
        self.events = collections.deque(maxlen=history)
        self._floor = first_rv      # events after this RV are all kept

    # -- reads -----------------------------------------------------------

    def get(self, key, ns, name):
        """A copy of the object, or None."""
        with self.lock:
            o = self.objects.get((key, ns or "", name))
            return copy.deepcopy(o) if o is not None else None

    def list(self, key, ns=None):
        """Copies of every object of `key` (in namespace `ns` if given),
        sorted by namespace and name, and the current resourceVersion."""
        with self.lock:
            out = [copy.deepcopy(o) for (k, n, _), o in
                   sorted(self.objects.items(), key=lambda kv: kv[0])
                   if k == key and (ns is None or n == ns)]
            return out, str(self.rv)

    def keys(self):
        with self.lock:
            return sorted({k for k, _, _ in self.objects})

    def namespaces(self):
        with self.lock:
            return sorted({n for _, n, _ in self.objects if n})

    def current_rv(self):
        with self.lock:
            return str(self.rv)

    # -- writes ----------------------------------------------------------

    def next_rv(self):
        with self.lock:
            self.rv += 1
            return self.rv

    def put(self, key, obj, etype=None):
        """Stores `obj` (a copy) with a fresh resourceVersion; records
        ADDED or MODIFIED. Returns the stored copy."""
        with self.lock:
            md = obj.setdefault("metadata", {})
            ident = (key, md.get("namespace") or "", md["name"])
            old = self.objects.get(ident)
            rv = self.next_rv()
            md["resourceVersion"] = str(rv)
            stored = copy.deepcopy(obj)
            self.objects[ident] = stored
            etype = etype or ("MODIFIED" if old is not None else "ADDED")
            self._record(Event(rv, key, ident[1], etype,
                               copy.deepcopy(stored),
                               copy.deepcopy(old) if old else None))
            return copy.deepcopy(stored)

    def remove(self, key, ns, name):
        """Deletes; records DELETED carrying the deletion's RV. Returns the
        removed object (as last stored, with the new RV) or None."""
        with self.lock:
            ident = (key, ns or "", name)
            old = self.objects.pop(ident, None)
            if old is None:
                return None
            rv = self.next_rv()
            gone = copy.deepcopy(old)
            gone["metadata"]["resourceVersion"] = str(rv)
            self._record(Event(rv, key, ident[1], "DELETED", gone,
                               copy.deepcopy(old)))
            return copy.deepcopy(gone)

    def _record(self, ev):
        if len(self.events) == self.events.maxlen:
            self._floor = self.events[0].rv
        self.events.append(ev)
        self.cond.notify_all()

    def compact(self):
        """Forgets the whole watch history: any watch from an older
        resourceVersion now gets 410 Expired."""
        with self.lock:
            self.events.clear()
            self._floor = self.rv
            self.cond.notify_all()

    # -- watch support -----------------------------------------------------

    def events_after(self, key, rv):
        """Events of `key` with resourceVersion > rv. Raises Expired when
        rv is older than the history kept."""
        with self.lock:
            if rv < self._floor:
                raise Expired(rv, self._floor + 1)
            return [e for e in self.events if e.rv > rv and e.key == key]

    def wait(self, timeout):
        with self.cond:
            self.cond.wait(timeout)
