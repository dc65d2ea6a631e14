using Microsoft.Extensions.Logging;

namespace Parley.Hub.Fleet;

/// <summary>The supervisor's log messages, with stable event ids (8xx). Environment values are never logged.</summary>
internal static partial class FleetLog
{
    [LoggerMessage(800, LogLevel.Information, "Instance {Name} started: pid {Pid}")]
    public static partial void Started(ILogger logger, string name, int pid);

    [LoggerMessage(801, LogLevel.Warning, "Instance {Name} could not start: {Reason}")]
    public static partial void StartFailed(ILogger logger, string name, string reason);

    [LoggerMessage(802, LogLevel.Information, "Instance {Name} exited: code {ExitCode}, signal {Signal}")]
    public static partial void Exited(ILogger logger, string name, int? exitCode, int? signal);

    [LoggerMessage(803, LogLevel.Information, "Instance {Name} restarts in {DelayMs} ms (restart {Restarts})")]
    public static partial void Backoff(ILogger logger, string name, long delayMs, int restarts);

    [LoggerMessage(804, LogLevel.Warning, "Instance {Name} is crash-looping ({Restarts} restarts within the window); not restarting")]
    public static partial void CrashLoop(ILogger logger, string name, int restarts);

    [LoggerMessage(805, LogLevel.Warning, "Instance {Name} ignored SIGTERM for {GraceMs} ms; killing it")]
    public static partial void Killed(ILogger logger, string name, long graceMs);

    [LoggerMessage(806, LogLevel.Warning, "Instance {Name} is unhealthy: {Reason}")]
    public static partial void Unhealthy(ILogger logger, string name, string reason);

    [LoggerMessage(807, LogLevel.Error, "Instance {Name}: supervisor step failed")]
    public static partial void StepFailed(ILogger logger, string name, Exception exception);

    [LoggerMessage(808, LogLevel.Error, "Instance {Name}: writing its log failed")]
    public static partial void LogWriteFailed(ILogger logger, string name, Exception exception);

    [LoggerMessage(809, LogLevel.Information, "Fleet: {Action} of instance {Name} by {Actor}")]
    public static partial void Operation(ILogger logger, string action, string name, string actor);

    [LoggerMessage(810, LogLevel.Warning, "Instance {Name}: killed pid {Pid}, left running by a previous hub")]
    public static partial void OrphanKilled(ILogger logger, string name, int pid);

    [LoggerMessage(811, LogLevel.Error, "Instance {Name}: its terminal failed")]
    public static partial void TerminalFailed(ILogger logger, string name, Exception exception);
}
