"""MBPP (Austin et al., 2021) in MultiPL-E's "reworded" Python form, scored by execution like HumanEval.

The data layer is :mod:`peftlab.tasks.mbpp.data`; provenance, licences and test adaptation are in
docs/datasets.md (section "MBPP") and the NOTICE file next to the data.
"""
