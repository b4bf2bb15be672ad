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

"""Page sizes: what ``hw:mem_page_size`` asks for, and a cell's page pools.

Pure: no nova. Sizes are KiB like nova's ``NUMAPagesTopology.size_kb``.
"""

from oslo_utils import strutils

from nova_numa_guard import topology

# The page size assumed for ``large`` when the host description lists no
# hugepage pools.
ASSUMED_LARGE_PAGE_KB = 2048


class PageSize:
    """A ``hw:mem_page_size`` request.

    :ivar value: the extra-spec value, as given.
    :ivar kind: ``'small'``, ``'large'``, ``'any'`` or ``'size'``.
    :ivar size_kb: the page size for ``'size'`` (4 becomes ``'small'``).
    :raises ValueError: with a one-line reason for anything nova would not
        read as a page size.
    """

    def __init__(self, value):
        self.value = str(value).strip()
        self.size_kb = None
        lowered = self.value.lower()
        if lowered in ('small', 'large', 'any'):
            self.kind = lowered
            self.value = lowered
            return
        if self.value.isdigit() and self.value.isascii():
            size_kb = int(self.value)
        else:
            try:
                size_b = strutils.string_to_bytes(self.value, return_int=True)
            except ValueError:
                raise ValueError('page size %r: expected small, large, any, '
                                 'a size in KiB or a size such as 2MB or 1GB'
                                 % self.value[:40])
            size_kb = size_b // 1024 if size_b % 1024 == 0 else 0
        if size_kb <= 0 or size_kb & (size_kb - 1):
            raise ValueError('page size %r is not a power of two KiB' %
                             self.value[:40])
        if size_kb == topology.SMALL_PAGE_KB:
            self.kind = 'small'
        else:
            self.kind = 'size'
            self.size_kb = size_kb

    @property
    def may_be_small(self):
        """Whether nova may back the guest with small pages."""
        return self.kind in ('small', 'any')


def pool_mb(cell, size_kb):
    """Free memory of a cell's pool of ``size_kb`` pages, in whole MiB."""
    total, used = cell.hugepages.get(size_kb, (0, 0))
    return max(0, total - used) * size_kb // 1024
