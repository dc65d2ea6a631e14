using System.Net;
using Parley.Hub;
using Parley.Hub.Fleet;
using Parley.Hub.State;
using Parley.Identity;
using Parley.Server.Logging;

namespace Parley.Server;

/// <summary>Everything <c>parley serve</c> can be told (flags, environment, config file; docs/operations.md).</summary>
public sealed class ServerOptions
{
    /// <summary>Where to listen, <c>HOST:PORT</c> (IPv6 in brackets). Default <c>127.0.0.1:4000</c>; port 0 picks a free port.</summary>
    public string Listen { get; set; } = DefaultListen;

    /// <summary>The default for <see cref="Listen"/>.</summary>
    public const string DefaultListen = "127.0.0.1:4000";

    /// <summary>Allow a non-loopback <see cref="Listen"/> address. Default false: the hub refuses to start and says why.</summary>
    public bool AllowRemote { get; set; }

    /// <summary>
    /// Browser origins (<c>scheme://host[:port]</c>) allowed to open sockets besides loopback pages and the
    /// hub's own host; <c>*</c> allows any. Default empty. Requests without <c>Origin</c> (non-browser clients) are always allowed.
    /// </summary>
    public List<string> AllowedOrigins { get; set; } = [];

    /// <summary>The data directory (database, logs). Default: <see cref="DefaultDataDir"/>.</summary>
    public string DataDir { get; set; } = DefaultDataDir();

    /// <summary>Commit with <c>synchronous=FULL</c> (durable across power loss). Default true.</summary>
    public bool DurableCommits { get; set; } = true;

    /// <summary>How long graceful shutdown may take before remaining sockets are aborted. Default 5 s.</summary>
    public TimeSpan ShutdownTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Accept every socket without a credential, as anonymous. Default false. Only for trying things out
    /// on one machine: refused together with a non-loopback <see cref="Listen"/>.
    /// </summary>
    public bool InsecureNoAuth { get; set; }

    /// <summary>Registration policy and token lifetimes.</summary>
    public IdentityOptions Identity { get; set; } = new();

    /// <summary>Hub limits and timings.</summary>
    public HubOptions Hub { get; set; } = new();

    /// <summary>Shared state limits (<c>state:</c> topics).</summary>
    public StateOptions State { get; set; } = new();

    /// <summary>Plain JSON WebSocket streams (<c>/ws/…</c>): idle timeout, queue bound, recent message events.</summary>
    public Streams.PlainStreamOptions Streams { get; set; } = new();
    /// <summary>How fleet instances are supervised (config section <c>fleet</c>).</summary>
    public FleetOptions Fleet { get; set; } = new();

    /// <summary>Terminal sessions on the hub (config section <c>terminals</c>; docs/protocol.md §17).</summary>
    public Parley.Hub.Terminals.TerminalOptions Terminals { get; set; } = new();

    /// <summary>Logging. A null <see cref="LogOptions.FilePath"/> becomes <c>&lt;data dir&gt;/logs/parley.log</c> unless <see cref="FileLogging"/> is false.</summary>
    public LogOptions Log { get; set; } = new();

    /// <summary>Write the log file. Default true.</summary>
    public bool FileLogging { get; set; } = true;

    /// <summary><c>$XDG_DATA_HOME/parley</c>, else <c>~/.local/share/parley</c>.</summary>
    public static string DefaultDataDir()
    {
        var xdg = Environment.GetEnvironmentVariable("XDG_DATA_HOME");
        var root = string.IsNullOrWhiteSpace(xdg)
            ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".local", "share")
            : xdg;
        return Path.Combine(root, "parley");
    }

    /// <summary>Parses <see cref="Listen"/>; <c>localhost</c> means 127.0.0.1.</summary>
    public static bool TryParseListen(string value, out IPEndPoint? endPoint, out string error)
    {
        endPoint = null;
        error = "";
        var text = value.Trim();
        var colon = text.LastIndexOf(':');
        if (colon <= 0 || colon == text.Length - 1)
        {
            error = $"--listen '{value}' must be HOST:PORT, e.g. 127.0.0.1:4000 or [::1]:4000";
            return false;
        }
        var host = text[..colon].Trim('[', ']');
        if (!int.TryParse(text[(colon + 1)..], out var port) || port is < 0 or > 65535)
        {
            error = $"--listen '{value}': the port must be a number from 0 to 65535";
            return false;
        }
        IPAddress? address;
        if (host.Equals("localhost", StringComparison.OrdinalIgnoreCase))
        {
            address = IPAddress.Loopback;
        }
        else if (host is "*" or "+")
        {
            address = IPAddress.Any;
        }
        else if (!IPAddress.TryParse(host, out address))
        {
            error = $"--listen '{value}': the host must be an IP address or localhost";
            return false;
        }
        endPoint = new IPEndPoint(address, port);
        return true;
    }

    /// <summary>Checks every setting; throws <see cref="ArgumentException"/> with a message that says what to do.</summary>
    public IPEndPoint Validate()
    {
        if (!TryParseListen(Listen, out var endPoint, out var error))
        {
            throw new ArgumentException(error);
        }
        if (!IPAddress.IsLoopback(endPoint!.Address) && !AllowRemote)
        {
            throw new ArgumentException(
                $"refusing to listen on {Listen}: it is reachable from other machines and Parley binds loopback by default. " +
                "Pass --allow-remote (or PARLEY_ALLOW_REMOTE=true) if that is what you want.");
        }
        if (InsecureNoAuth && !IPAddress.IsLoopback(endPoint.Address))
        {
            throw new ArgumentException(
                $"refusing --insecure-no-auth on {Listen}: anonymous access is only allowed on a loopback address. " +
                "Drop --insecure-no-auth (clients then need a token or API key), or listen on 127.0.0.1.");
        }
        if (Identity.AccessTokenLifetime < TimeSpan.FromSeconds(2) || Identity.AccessTokenLifetime > TimeSpan.FromDays(1))
        {
            throw new ArgumentException("identity access_token_lifetime_s must be between 2 seconds and 1 day");
        }
        if (Identity.RefreshTokenLifetime < Identity.AccessTokenLifetime || Identity.RefreshTokenLifetime > TimeSpan.FromDays(365))
        {
            throw new ArgumentException("identity refresh_token_lifetime_s must be at least the access token lifetime and at most 365 days");
        }
        if (string.IsNullOrWhiteSpace(DataDir))
        {
            throw new ArgumentException("--data must name a directory");
        }
        if (ShutdownTimeout <= TimeSpan.Zero || ShutdownTimeout > TimeSpan.FromMinutes(5))
        {
            throw new ArgumentException("ShutdownTimeout must be between 0 and 5 minutes");
        }
        Hub.Validate();
        State.Validate();
        Streams.Validate();
        Fleet.Validate();
        Terminals.Validate(Hub);
        return endPoint;
    }
}
