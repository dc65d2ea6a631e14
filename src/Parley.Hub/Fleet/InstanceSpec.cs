using System.Text.RegularExpressions;

namespace Parley.Hub.Fleet;

/// <summary>What the supervisor does when an instance's process exits without being asked to (docs/fleet.md).</summary>
public enum RestartPolicy
{
    /// <summary>Leave it <c>exited</c>.</summary>
    Never,

    /// <summary>Restart after a non-zero exit (or a signal); a clean exit (code 0) stays <c>exited</c>.</summary>
    OnFailure,

    /// <summary>Restart after every exit.</summary>
    Always,
}

/// <summary>How an instance is run: everything an operator gives at create time (docs/fleet.md).</summary>
/// <param name="Command">The program: a path or a name looked up on the hub's <c>PATH</c>. Run directly, never through a shell.</param>
/// <param name="Args">Its arguments, passed as they are.</param>
/// <param name="Cwd">Absolute working directory; null means the instance's own directory, <c>&lt;data dir&gt;/fleet/&lt;name&gt;</c>.</param>
/// <param name="Env">Variables added to (or replacing) the hub's environment. Values may be secrets: they never leave the hub.</param>
/// <param name="Port">The port the instance listens on (informational, shown to watchers); null when none.</param>
/// <param name="HealthUrl">An <c>http(s)</c> URL checked every <see cref="FleetOptions.HealthInterval"/>; null: only "process alive".</param>
/// <param name="Restart">The restart policy (default <see cref="RestartPolicy.Never"/>).</param>
/// <param name="Terminal">Run under a pseudo-terminal the hub hosts as a live terminal session (docs/fleet.md, Terminal) instead of with pipes.</param>
public sealed partial record InstanceSpec(
    string Command,
    IReadOnlyList<string> Args,
    string? Cwd,
    IReadOnlyDictionary<string, string> Env,
    int? Port,
    string? HealthUrl,
    RestartPolicy Restart,
    bool Terminal = false)
{
    /// <summary>Most arguments.</summary>
    public const int MaxArgs = 256;

    /// <summary>Most environment variables.</summary>
    public const int MaxEnv = 256;

    /// <summary>Longest command, argument, path or URL, in characters.</summary>
    public const int MaxTextLength = 4096;

    /// <summary>Longest environment value, in characters.</summary>
    public const int MaxEnvValueLength = 32 * 1024;

    /// <summary>The first problem with this spec as <c>(field, what is wrong)</c>, or null when it is valid.</summary>
    public (string Field, string Message)? Check()
    {
        if (string.IsNullOrWhiteSpace(Command) || Command.Length > MaxTextLength || Command.Contains('\0', StringComparison.Ordinal))
        {
            return ("command", $"the command must be 1-{MaxTextLength} characters");
        }
        if (Args.Count > MaxArgs || Args.Any(a => a is null || a.Length > MaxTextLength || a.Contains('\0', StringComparison.Ordinal)))
        {
            return ("args", $"at most {MaxArgs} arguments of at most {MaxTextLength} characters each");
        }
        if (Cwd is not null && (Cwd.Length > MaxTextLength || !Path.IsPathFullyQualified(Cwd)))
        {
            return ("cwd", "the working directory must be an absolute path");
        }
        if (Env.Count > MaxEnv)
        {
            return ("env", $"at most {MaxEnv} variables");
        }
        foreach (var (key, value) in Env)
        {
            if (!EnvKey().IsMatch(key))
            {
                return ("env", $"'{key}' is not a variable name (letters, digits and _, not starting with a digit)");
            }
            if (value is null || value.Length > MaxEnvValueLength || value.Contains('\0', StringComparison.Ordinal))
            {
                return ("env", $"the value of {key} must be at most {MaxEnvValueLength} characters");
            }
        }
        if (Port is < 1 or > 65535)
        {
            return ("port", "the port must be from 1 to 65535");
        }
        if (HealthUrl is not null && (HealthUrl.Length > MaxTextLength || !Uri.TryCreate(HealthUrl, UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https")))
        {
            return ("health_url", "the health URL must be an absolute http:// or https:// URL");
        }
        return null;
    }

    /// <summary>The wire name of a policy: <c>never</c>, <c>on-failure</c>, <c>always</c>.</summary>
    public static string PolicyName(RestartPolicy policy) => policy switch
    {
        RestartPolicy.OnFailure => "on-failure",
        RestartPolicy.Always => "always",
        _ => "never",
    };

    /// <summary>Parses a wire policy name; false for anything else.</summary>
    public static bool TryParsePolicy(string? text, out RestartPolicy policy)
    {
        (var ok, policy) = text switch
        {
            "never" => (true, RestartPolicy.Never),
            "on-failure" => (true, RestartPolicy.OnFailure),
            "always" => (true, RestartPolicy.Always),
            _ => (false, RestartPolicy.Never),
        };
        return ok;
    }

    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_]*$")]
    private static partial Regex EnvKey();
}

/// <summary>A stored instance: its name, spec and what the operator last asked for.</summary>
/// <param name="Name">1-63 of <c>[a-z0-9_-]</c>, starting with a letter or digit (<see cref="IsValidName"/>).</param>
/// <param name="Spec">How it runs.</param>
/// <param name="DesiredRunning">True after start/restart, false after stop/archive/create: instances with true are started when the hub starts.</param>
/// <param name="ArchivedAtMs">When it was archived (Unix ms); null when it is not archived.</param>
/// <param name="CreatedBy">Who created it.</param>
/// <param name="CreatedAtMs">When it was created (Unix ms).</param>
/// <param name="UpdatedAtMs">When it was last changed (Unix ms).</param>
public sealed partial record InstanceRecord(string Name, InstanceSpec Spec, bool DesiredRunning, long? ArchivedAtMs, string CreatedBy, long CreatedAtMs, long UpdatedAtMs)
{
    /// <summary>True when archived.</summary>
    public bool Archived => ArchivedAtMs is not null;

    /// <summary>True when <paramref name="name"/> matches <c>[a-z0-9][a-z0-9_-]{0,62}</c>.</summary>
    public static bool IsValidName(string? name) => name is not null && NamePattern().IsMatch(name);

    [GeneratedRegex("^[a-z0-9][a-z0-9_-]{0,62}$")]
    private static partial Regex NamePattern();
}
