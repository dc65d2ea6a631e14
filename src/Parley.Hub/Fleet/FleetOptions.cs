namespace Parley.Hub.Fleet;

/// <summary>
/// How the supervisor runs instances (docs/fleet.md). Config section <c>fleet</c> (env <c>PARLEY_FLEET__…</c>,
/// e.g. <c>PARLEY_FLEET__STOPGRACEPERIOD=00:00:05</c>). Every default lives here.
/// </summary>
public sealed class FleetOptions
{
    /// <summary>How long a stop waits after SIGTERM before SIGKILL. Default 10 s.</summary>
    public TimeSpan StopGracePeriod { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>The first restart delay; each consecutive failure doubles it (1, 2, 4, 8, 16, 30 s …). Default 1 s.</summary>
    public TimeSpan BackoffInitial { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>The longest restart delay. Default 30 s.</summary>
    public TimeSpan BackoffMax { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Restarts allowed within <see cref="CrashLoopWindow"/>: the exit that would need one more becomes
    /// <c>crash_loop</c> and the supervisor stops restarting. Default 5; 0 makes the first unwanted exit a crash loop.
    /// </summary>
    public int CrashLoopRestarts { get; set; } = 5;

    /// <summary>The window of <see cref="CrashLoopRestarts"/>; a run that lasts at least this long also resets the backoff. Default 60 s.</summary>
    public TimeSpan CrashLoopWindow { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>How often an instance with a health URL is checked. Default 5 s.</summary>
    public TimeSpan HealthInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>How long one health check may take before it counts as failed. Default 2 s.</summary>
    public TimeSpan HealthTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Size at which an instance's <c>output.log</c> is rotated, in bytes. Default 10 MiB.</summary>
    public long LogMaxBytes { get; set; } = 10 * 1024 * 1024;

    /// <summary>Log files kept per instance, the current one included (<c>output.log</c>, <c>output.log.1</c> …). Default 5.</summary>
    public int LogFiles { get; set; } = 5;

    /// <summary>Columns of the terminal an instance with <c>terminal: true</c> starts with (a viewer allowed to type may resize it). Default 120.</summary>
    public int TerminalCols { get; set; } = 120;

    /// <summary>Rows of that terminal. Default 32.</summary>
    public int TerminalRows { get; set; } = 32;

    /// <summary>Throws when a setting is out of range, naming it and its bounds.</summary>
    public void Validate()
    {
        Check(StopGracePeriod, TimeSpan.Zero, TimeSpan.FromMinutes(10), nameof(StopGracePeriod));
        Check(BackoffInitial, TimeSpan.FromMilliseconds(1), TimeSpan.FromHours(1), nameof(BackoffInitial));
        Check(BackoffMax, BackoffInitial, TimeSpan.FromHours(1), nameof(BackoffMax));
        Check(CrashLoopWindow, TimeSpan.FromMilliseconds(1), TimeSpan.FromDays(1), nameof(CrashLoopWindow));
        Check(HealthInterval, TimeSpan.FromMilliseconds(10), TimeSpan.FromHours(1), nameof(HealthInterval));
        Check(HealthTimeout, TimeSpan.FromMilliseconds(10), TimeSpan.FromMinutes(1), nameof(HealthTimeout));
        if (CrashLoopRestarts is < 0 or > 1000)
        {
            throw new ArgumentException($"fleet {nameof(CrashLoopRestarts)} must be in [0, 1000]");
        }
        if (LogMaxBytes is < 1024 or > 1L << 40)
        {
            throw new ArgumentException($"fleet {nameof(LogMaxBytes)} must be in [1024, 1099511627776]");
        }
        if (TerminalCols is < 1 or > 10_000 || TerminalRows is < 1 or > 10_000)
        {
            throw new ArgumentException($"fleet {nameof(TerminalCols)} and {nameof(TerminalRows)} must be in [1, 10000]");
        }
        if (LogFiles is < 1 or > 1000)
        {
            throw new ArgumentException($"fleet {nameof(LogFiles)} must be in [1, 1000]");
        }
    }

    private static void Check(TimeSpan value, TimeSpan min, TimeSpan max, string name)
    {
        if (value < min || value > max)
        {
            throw new ArgumentException($"fleet {name} must be between {min} and {max}");
        }
    }
}
