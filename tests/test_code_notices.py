"""Header lines of model code that name another organisation (pipeline/sources/code_notices.py), pure."""

from hubscan.pipeline.sources.code_notices import MAX_CODE_BYTES, MAX_CODE_FILES, code_files, notice_lines
from hubscan.pipeline.sources.refs import FileRef, ModelRef

PORTED = '''# coding=utf-8
# Copyright 2024 Meta Platforms, Inc. and affiliates. All rights reserved.
# Copyright 2024 The HuggingFace Inc. team.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# This software may be used and distributed according to the terms of the Llama 3 Community License.
"""Copyright (c) Acme Labs."""
import torch
'''


def test_copyright_lines_of_other_organisations_and_licensor_licence_lines_are_kept():
    lines = notice_lines(PORTED, "acme/encoder")
    assert lines == [
        (2, "Copyright 2024 Meta Platforms, Inc. and affiliates. All rights reserved."),
        (3, "Copyright 2024 The HuggingFace Inc. team."),
        (
            6,
            "This software may be used and distributed according to the terms of the Llama 3 Community License.",
        ),
    ]  # the repo's own org (Acme) and a licence line naming no licensor are left out


def test_a_bare_copyright_word_or_code_after_the_header_is_not_a_notice():
    assert notice_lines("# Copyright 2024\n# (c)\nx = 1\n", "org/m") == []
    assert notice_lines("\n" * 80 + "# Copyright Meta\n", "org/m") == []


def test_only_small_python_files_are_read_and_at_most_a_few():
    files = [FileRef(f"m{i}.py", 10) for i in range(MAX_CODE_FILES + 3)]
    files += [FileRef("big.py", MAX_CODE_BYTES + 1), FileRef("empty.py", 0), FileRef("model.safetensors", 10)]
    picked = code_files(ModelRef("o/m", "r", tuple(files)))
    assert len(picked) == MAX_CODE_FILES and all(
        f.name.startswith("m") and f.name.endswith(".py") for f in picked
    )
