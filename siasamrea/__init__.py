"""SiaSamRea (Yu et al., NeurIPS 2021) in layers; each imports only the layers below it (README,
"Architecture").

core -> method, video -> synthetic -> data -> training -> pipeline -> analysis, perf
"""
