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

# nova.tests.functional must be imported first: its __init__ monkey patches
# (eventlet) before anything else of nova is imported.
import nova.tests.functional  # noqa: F401

import logging  # noqa: E402

# nova's thread pools log their shutdown at INFO when a test's services stop,
# after the test's log capture is gone, straight to the console: keep those
# lines (and the periodic task notice of the same moment) out of the output.
for _name in ('nova.thread_pool_factory', 'oslo_service.periodic_task'):
    logging.getLogger(_name).setLevel(logging.WARNING)
