# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.

"""How local a guest would be on a host: a score in ``[0, 1]``.

Pure functions over plain numbers; nothing here imports nova. The weigher's
adapter (:mod:`nova_numa_guard.device_view`) turns a nova request and host
into them.

A guest takes ``spans`` host cells: one for a guest without a NUMA topology
(placed on one cell when one can hold it), one per guest cell for a NUMA
guest. A host cell *holds* the guest (a guest cell) when its free memory and
CPUs are enough; the guest *fits* when each of its spans can get a holding
cell of its own.

A guest that needs devices or NICs (:func:`device_score`) wants ``wanted[i]``
units of each need ``i`` (the devices of a PCI request, one per NIC), and a
cell offers ``local[c][i]`` of them. ``s`` is the share of the wanted units
the guest's cells offer, on the best cells (greedily, for several spans):

====================================================  ============
the host                                              score
====================================================  ============
the guest fits on cells that offer all its units      1.0
the guest fits on cells that offer a share ``s``      0.5 + 0.5 s
the guest fits nowhere; the best cells offer ``s``    0.25 s
====================================================  ============

A guest that needs none (:func:`plain_score`) should keep off *busy* cells
(cells with free devices or affined NICs), so that their memory stays free
for the guests that need those devices; ``k`` of its ``spans`` can have
holding cells that are not busy:

====================================================  ============
the host                                              score
====================================================  ============
has no busy cell, and the guest fits                  1.0
has busy cells, and the guest fits                    0.25 + 0.5 k
                                                      / spans
the guest fits nowhere                                0.0
====================================================  ============

So a device-less host beats a host where the guest fits a cell without
devices (0.75), which beats one whose only fitting cells hold devices
(0.25).
"""

# Score bands of a guest that needs devices.
FIT = 0.5
NO_FIT = 0.25
# Score bands of a guest that needs none.
IDLE_HOST = 1.0
BUSY_FLOOR = 0.25
BUSY_SPREAD = 0.5


def coverage(cells, local, wanted):
    """The share of the wanted units that ``cells`` offer together.

    :param cells: indexes of host cells.
    :param local: per host cell, the units it offers of each need.
    :param wanted: per need, the units wanted (> 0 in all).
    :returns: a float in ``[0, 1]``.
    """
    got = 0
    for i, want in enumerate(wanted):
        have = 0
        for c in cells:
            have += local[c][i]
        got += min(have, want)
    return got / sum(wanted)


def best_cells(candidates, local, wanted, spans):
    """Up to ``spans`` of ``candidates`` that offer the most units.

    Greedy: each step adds the cell that adds the most coverage (the first
    such cell on ties). Exact for one span, which is every guest without a
    NUMA topology.

    :returns: ``(cells, coverage)``.
    """
    chosen = []
    best = 0.0
    for _ in range(spans):
        pick = None
        for c in candidates:
            if c in chosen:
                continue
            share = coverage(chosen + [c], local, wanted)
            if pick is None or share > pick[1]:
                pick = (c, share)
        if pick is None:
            break
        chosen.append(pick[0])
        best = pick[1]
        if best >= 1.0:
            break
    return chosen, best


def device_score(holds, fits, local, wanted, spans=1):
    """Score a host for a guest that needs devices or NICs.

    :param holds: per host cell, whether it can hold (a guest cell of) the
        guest.
    :param fits: whether every span of the guest can have a holding cell of
        its own.
    :param local: per host cell, the units it offers of each need; None when
        no cell offers any.
    :param wanted: per need, the units wanted; at least one need, each > 0.
    :param spans: host cells the guest takes.
    :returns: a float in ``[0, 1]`` (see the module doc).
    """
    if local is None:
        share = 0.0
    elif fits:
        candidates = [c for c, ok in enumerate(holds) if ok]
        share = _best_share(candidates, local, wanted, spans)
    else:
        share = _best_share(range(len(local)), local, wanted, spans)
    return FIT + FIT * share if fits else NO_FIT * share


def _best_share(candidates, local, wanted, spans):
    if spans == 1:
        # One cell: the best one's own share.
        best = 0
        for c in candidates:
            got = 0
            for have, want in zip(local[c], wanted):
                got += have if have < want else want
            if got > best:
                best = got
        return best / sum(wanted)
    return best_cells(candidates, local, wanted, spans)[1]


def plain_score(fits, busy_host, idle_spans, spans=1):
    """Score a host for a guest that needs no device.

    :param fits: whether every span of the guest can have a holding cell of
        its own.
    :param busy_host: whether some cell of the host has free devices or
        affined NICs.
    :param idle_spans: how many spans of the guest can have a holding cell
        that has neither (see :func:`idle_spans`).
    :param spans: host cells the guest takes.
    :returns: a float in ``[0, 1]`` (see the module doc).
    """
    if not fits:
        return 0.0
    if not busy_host:
        return IDLE_HOST
    return BUSY_FLOOR + BUSY_SPREAD * min(idle_spans, spans) / spans


def idle_spans(holds, busy):
    """How many holding cells are not busy.

    :param holds: per host cell, whether it holds (a guest cell of) the
        guest.
    :param busy: per host cell, whether it is busy; None when none is.
    """
    if busy is None:
        return sum(holds)
    return sum(1 for ok, taken in zip(holds, busy) if ok and not taken)


def fit_cells(room, need):
    """Which host cells hold a guest cell, and whether the guest fits.

    :param room: per host cell, a tuple of what it has (free MB, CPUs...).
    :param need: per guest cell, a tuple of what it needs, in the same
        order; a guest cell fits a host cell when every figure of the host
        cell is at least the guest cell's.
    :returns: ``(holds, fits)``: per host cell whether it holds some guest
        cell, and whether the guest cells can each have a host cell of their
        own (a bipartite matching).
    """
    can = [[all(have >= want for have, want in zip(r, n)) for r in room]
           for n in need]
    holds = [any(row[c] for row in can) for c in range(len(room))]
    if len(need) == 1:
        return holds, any(holds)
    owner = {}

    def assign(g, seen):
        for c, ok in enumerate(can[g]):
            if ok and c not in seen:
                seen.add(c)
                if c not in owner or assign(owner[c], seen):
                    owner[c] = g
                    return True
        return False

    fits = all(assign(g, set()) for g in range(len(need)))
    return holds, fits
