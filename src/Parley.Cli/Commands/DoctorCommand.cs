using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using Parley.Cli.Identity;
using Parley.Client;
using Parley.Protocol;

namespace Parley.Cli.Commands;

/// <summary>
/// <c>parley doctor</c>: checks what a verb needs, in the order a verb needs it — the config files, the
/// hub's URL and reachability, the clock (logins are signed with a time the hub accepts within ±60 s),
/// the credential and its files, and what the hub says of it — and says how to fix each failure.
/// </summary>
internal static class DoctorCommand
{
    internal enum Outcome
    {
        Ok,
        Warn,
        Fail,
    }

    internal sealed record Check(string Name, Outcome Outcome, string Detail, string? Fix = null);

    // The hub accepts login timestamps within ±60 s (docs/security.md); warn well before that.
    private static readonly TimeSpan SkewWarning = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan SkewLimit = TimeSpan.FromSeconds(60);

    public static Command Create()
    {
        var command = new Command("doctor", "Check the config files, the hub's reachability, the clock and your credential, and say how to fix what is wrong. Exit 1 when a check fails.");
        var common = ClientCommands.CommonOptions(command);
        command.SetAction(async (parse, ct) =>
        {
            var checks = new List<Check>();
            try
            {
                await RunChecksAsync(parse, common, checks, ct);
            }
            catch (IdentityCommands.UsageException ex)
            {
                await Console.Error.WriteLineAsync($"parley doctor: {SecretRedactor.Redact(ex.Message)}");
                return ExitCodes.Usage;
            }
            Print(checks, parse.GetValue(common.Json));
            return checks.Exists(c => c.Outcome == Outcome.Fail) ? ExitCodes.Failure : ExitCodes.Ok;
        });
        return command;
    }

    private static async Task RunChecksAsync(ParseResult parse, ClientCommands.Common common, List<Check> checks, CancellationToken ct)
    {
        var root = ConfigPaths.Root();
        if (!Directory.Exists(root))
        {
            checks.Add(new Check("config", Outcome.Ok, $"{root} does not exist yet (nothing registered or configured on this machine)"));
        }
        else
        {
            checks.Add(ConfigPaths.ExposureOf(root) is { } exposure
                ? new Check("config", Outcome.Warn, exposure, $"chmod 700 {root}")
                : new Check("config", Outcome.Ok, root));
        }

        Profile? profile = null;
        try
        {
            var (current, all) = Profiles.Load();
            profile = all.Find(p => p.Name == current);
            checks.Add(current is not null && profile is null
                ? new Check("profile", Outcome.Warn, $"the current profile '{current}' is not in {Profiles.FilePath}", "parley profile use NAME (see parley profile list)")
                : new Check("profile", Outcome.Ok, profile is null ? "no current profile" : $"{profile.Name}: {profile.Server}{(profile.User is null ? "" : " as " + profile.User)}"));
        }
        catch (InvalidDataException ex)
        {
            checks.Add(new Check("profile", Outcome.Fail, ex.Message, $"fix or delete {Profiles.FilePath}"));
            return; // every verb reads the profiles: nothing else works until this is fixed
        }

        var (server, credentials, token, name) = ClientCommands.Resolve(parse, common);
        var source = parse.GetValue(common.Server) is not null ? "--server"
            : Environment.GetEnvironmentVariable("PARLEY_SERVER") is not null ? "PARLEY_SERVER"
            : profile is not null ? $"profile {profile.Name}" : "the default";
        checks.Add(new Check("server", Outcome.Ok, $"{server.ToString().TrimEnd('/')} (from {source})"));

        if (!await CheckHubAsync(server, checks, ct))
        {
            return; // nothing below can be checked without the hub
        }

        if (token is not null)
        {
            checks.Add(new Check("credential", Outcome.Ok, token.StartsWith("prl_", StringComparison.Ordinal) ? "an API key (--token / PARLEY_TOKEN)" : "a token (--token / PARLEY_TOKEN)"));
        }
        else if (name is not null)
        {
            CheckDeviceKey(name, checks);
            CheckStoredLogin(server, name, checks);
        }
        else
        {
            checks.Add(new Check("credential", Outcome.Warn, "none: only a hub run with --insecure-no-auth accepts that",
                "register (parley register --name NAME), then pass --name NAME, set PARLEY_USER, or add it to a profile"));
            return;
        }

        try
        {
            var me = await IdentityCommands.GetAsync(server, "/api/whoami", await credentials!(new CredentialRequest(false), ct), ct);
            checks.Add(new Check("identity", Outcome.Ok, $"the hub knows you as {me["name"]} ({me["role"]})"));
        }
        catch (Exception ex) when (ex is IdentityCommands.CliFailure or CredentialUnavailableException)
        {
            checks.Add(new Check("identity", Outcome.Fail, SecretRedactor.Redact(ex.Message),
                name is not null ? $"parley login --name {name} (or register first)" : "check --token / PARLEY_TOKEN: it may be revoked or expired"));
        }
    }

    // Reachability, version and round-trip from /health; the clock from the hub's Date header.
    internal static async Task<bool> CheckHubAsync(Uri server, List<Check> checks, CancellationToken ct)
    {
        using var http = new HttpClient { BaseAddress = server, Timeout = TimeSpan.FromSeconds(10) };
        var clock = Stopwatch.StartNew();
        try
        {
            using var response = await http.GetAsync("/health", ct);
            var rtt = clock.Elapsed;
            var text = await response.Content.ReadAsStringAsync(ct);
            JsonObject? health = null;
            try
            {
                health = JsonNode.Parse(text) as JsonObject;
            }
            catch (JsonException)
            {
            }
            if (health?["version"] is not { } version)
            {
                checks.Add(new Check("hub", Outcome.Fail, $"{server} answered {(int)response.StatusCode} but is not a Parley hub", "check the URL and port"));
                return false;
            }
            checks.Add(new Check("hub", response.IsSuccessStatusCode ? Outcome.Ok : Outcome.Warn,
                $"reachable: {health["status"]}, version {version}, {health["connections"]} connections, {rtt.TotalMilliseconds:0.0} ms"));
            if (response.Headers.Date is { } hubTime)
            {
                // The Date header has whole seconds and was stamped somewhere within the round trip.
                var skew = DateTimeOffset.UtcNow - (rtt / 2) - hubTime;
                var size = skew.Duration();
                checks.Add(size > SkewLimit
                    ? new Check("clock", Outcome.Fail, $"this machine's clock is {size.TotalSeconds:0} s {(skew > TimeSpan.Zero ? "ahead of" : "behind")} the hub's; logins are refused beyond {SkewLimit.TotalSeconds:0} s", "synchronise the clock (e.g. enable NTP: timedatectl set-ntp true)")
                    : size > SkewWarning
                        ? new Check("clock", Outcome.Warn, $"this machine's clock is {size.TotalSeconds:0} s off the hub's (logins fail beyond {SkewLimit.TotalSeconds:0} s)", "synchronise the clock (NTP)")
                        : new Check("clock", Outcome.Ok, "in step with the hub's"));
            }
            return true;
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException && !ct.IsCancellationRequested)
        {
            checks.Add(new Check("hub", Outcome.Fail, $"cannot reach {server}: {SecretRedactor.Redact(ex.Message)}",
                "start it (parley serve) or point --server / PARLEY_SERVER / a profile at the right hub"));
            return false;
        }
    }

    private static void CheckDeviceKey(string name, List<Check> checks)
    {
        var path = DeviceKeyFile.PathFor(name);
        try
        {
            DeviceKeyFile.Load(path);
            checks.Add(new Check("device key", Outcome.Ok, $"{path} (owner-only)"));
        }
        catch (FileNotFoundException)
        {
            checks.Add(new Check("device key", Outcome.Fail, $"no device key for {name} at {path}", $"parley register --name {name}, or copy the key from the machine that registered it"));
        }
        catch (Exception ex) when (ex is UnauthorizedAccessException or InvalidDataException or IOException)
        {
            checks.Add(new Check("device key", Outcome.Fail, ex.Message, ex is UnauthorizedAccessException ? $"chmod 600 {path}" : $"replace {path}"));
        }
    }

    private static void CheckStoredLogin(Uri server, string name, List<Check> checks)
    {
        try
        {
            var stored = Sessions.Load(server, name);
            var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            checks.Add(stored is null
                ? new Check("login", Outcome.Ok, $"no stored login for {name}: the next verb logs in with the device key")
                : stored.RefreshExpiresAtMs <= now
                    ? new Check("login", Outcome.Ok, "the stored login has expired: the next verb logs in again with the device key")
                    : new Check("login", Outcome.Ok, $"stored in {Sessions.PathFor(server, name)}; renews itself until {DateTimeOffset.FromUnixTimeMilliseconds(stored.RefreshExpiresAtMs):u}"));
        }
        catch (UnauthorizedAccessException ex)
        {
            checks.Add(new Check("login", Outcome.Fail, ex.Message, $"chmod 600 {Sessions.PathFor(server, name)}"));
        }
    }

    internal static void Print(List<Check> checks, bool json)
    {
        if (json)
        {
            var array = new JsonArray();
            foreach (var check in checks)
            {
                var item = new JsonObject { ["check"] = check.Name, ["status"] = check.Outcome.ToString().ToLowerInvariant(), ["detail"] = check.Detail };
                if (check.Fix is not null)
                {
                    item["fix"] = check.Fix;
                }
                array.Add(item);
            }
            Console.WriteLine(new JsonObject { ["ok"] = !checks.Exists(c => c.Outcome == Outcome.Fail), ["checks"] = array }.ToJsonString());
            return;
        }
        foreach (var check in checks)
        {
            var mark = check.Outcome switch { Outcome.Ok => "ok  ", Outcome.Warn => "warn", _ => "FAIL" };
            Console.WriteLine($"{mark}  {check.Name,-10}  {check.Detail}");
            if (check.Fix is not null)
            {
                Console.WriteLine($"      {"",-10}  fix: {check.Fix}");
            }
        }
    }
}
