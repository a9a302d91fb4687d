"""The Markdown header block (command, machine, data, wall time) of the benchmark's and the
study's reports."""


def machine_text(machine):
    """'CPU, N cores (M usable), platform, Python X' from experiment.machine_info()'s dict."""
    usable = machine.get("affinity_cores")
    cores = f"{machine['cpu_cores']} cores" + (f" ({usable} usable)" if usable else "")
    python = f", Python {machine['python']}" if machine.get("python") else ""
    return f"{machine['cpu_model']}, {cores}, {machine['platform']}{python}"


def header(title, command, machine, data, wall_seconds, details=(), wall_note=""):
    """Title, then Command / Machine / Data / details / Wall time lines (Markdown line breaks)."""
    lines = [f"# {title}", "", f"Command: `{command}`  ", f"Machine: {machine_text(machine)}  ",
             f"Data: {data}  "]
    lines += [f"{detail}  " for detail in details]
    lines.append(f"Wall time of this invocation: {wall_seconds / 60:.1f} min{wall_note}")
    return lines + [""]
