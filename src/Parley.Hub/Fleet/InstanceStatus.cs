namespace Parley.Hub.Fleet;

/// <summary>The statuses of an instance (docs/fleet.md).</summary>
public static class InstanceStatus
{
    /// <summary>Not running, and not asked to run (also every instance's status when the hub starts).</summary>
    public const string Stopped = "stopped";

    /// <summary>The process is being launched.</summary>
    public const string Starting = "starting";

    /// <summary>The process is alive (and its health URL, if any, answered 2xx last time).</summary>
    public const string Running = "running";

    /// <summary>The process is alive but its health URL failed or timed out.</summary>
    public const string Unhealthy = "unhealthy";

    /// <summary>The process exited on its own and the restart policy does not restart it (or it could not start).</summary>
    public const string Exited = "exited";

    /// <summary>The process exited and will be restarted after the backoff delay.</summary>
    public const string Backoff = "backoff";

    /// <summary>Too many restarts within the crash-loop window: no more restarts until someone starts it.</summary>
    public const string CrashLoop = "crash_loop";

    /// <summary>SIGTERM was sent; SIGKILL follows after the grace period.</summary>
    public const string Stopping = "stopping";

    /// <summary>True for statuses with a live process or a pending restart (delete refuses these).</summary>
    public static bool IsActive(string status) => status is Starting or Running or Unhealthy or Backoff or Stopping;
}

/// <summary>What an instance's process is doing now. Times are Unix ms.</summary>
/// <param name="Status">One of <see cref="InstanceStatus"/>.</param>
/// <param name="Pid">The live process id, or null.</param>
/// <param name="StartedAtMs">When the current (or last) process started, or null when none has.</param>
/// <param name="ExitCode">The last exit code, or null (never exited, or could not start). A process killed by a signal reports 128 + the signal, as a shell does.</param>
/// <param name="Signal">The signal that ended the last process (Unix: inferred from an exit code of 129–192), or null.</param>
/// <param name="Restarts">Restarts made by the restart policy since the last start by an operator.</param>
/// <param name="LastExitAtMs">When the last process exited, or null.</param>
/// <param name="Error">Why the last start or health check failed, or null.</param>
/// <param name="TerminalId">For an instance run under a terminal: the id of the terminal session of the current (or last) process since the hub started (topic <c>term:&lt;id&gt;</c>); null otherwise.</param>
public sealed record InstanceRuntime(string Status, int? Pid, long? StartedAtMs, int? ExitCode, int? Signal, int Restarts, long? LastExitAtMs, string? Error, string? TerminalId = null)
{
    /// <summary>An instance that has not run since the hub started.</summary>
    public static readonly InstanceRuntime Initial = new(InstanceStatus.Stopped, null, null, null, null, 0, null, null);
}

/// <summary>An instance as watchers see it: the stored record and what its process is doing.</summary>
public sealed record InstanceView(InstanceRecord Record, InstanceRuntime Runtime)
{
    /// <summary>The instance name.</summary>
    public string Name => Record.Name;
}
