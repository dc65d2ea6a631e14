using System.CommandLine;
using System.Net.Sockets;
using System.Text.Json;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Parley.Identity;
using Parley.Server;

namespace Parley.Cli.Commands;

/// <summary><c>parley serve</c>: run the hub (docs/operations.md).</summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var listen = new Option<string?>("--listen") { Description = $"Address to listen on, HOST:PORT (default {ServerOptions.DefaultListen}; env PARLEY_LISTEN). Port 0 picks a free port." };
        var data = new Option<string?>("--data") { Description = "Data directory for the database and logs (default $XDG_DATA_HOME/parley or ~/.local/share/parley; env PARLEY_DATA)." };
        var allowRemote = new Option<bool?>("--allow-remote") { Description = "Allow listening on a non-loopback address (env PARLEY_ALLOW_REMOTE)." };
        var config = new Option<string?>("--config") { Description = "JSON config file (default $XDG_CONFIG_HOME/parley/hub.json if it exists; env PARLEY_CONFIG)." };
        var logLevel = new Option<string?>("--log-level") { Description = "trace, debug, information, warning or error (default information; env PARLEY_LOG_LEVEL)." };
        var allowedOrigins = new Option<string[]>("--allowed-origin") { Description = "A browser origin (scheme://host:port) allowed to connect besides loopback pages; repeatable; * allows any (env PARLEY_ALLOWED_ORIGINS, comma-separated).", AllowMultipleArgumentsPerToken = false };
        var json = new Option<bool>("--json") { Description = "Print the start-up line as JSON (for scripts)." };
        var insecureNoAuth = new Option<bool?>("--insecure-no-auth") { Description = "Accept sockets without a credential, as anonymous (env PARLEY_INSECURE_NO_AUTH). Only on a loopback address; for trying things out." };

        var command = new Command("serve", "Run the hub on its embedded SQLite store.")
        {
            listen, data, allowRemote, config, logLevel, allowedOrigins, insecureNoAuth, json,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            ServerOptions options;
            try
            {
                options = Resolve(parse.GetValue(config), parse.GetValue(listen), parse.GetValue(data), parse.GetValue(allowRemote), parse.GetValue(logLevel), parse.GetValue(allowedOrigins), parse.GetValue(insecureNoAuth));
                options.Validate();
            }
            catch (Exception ex) when (ex is ArgumentException or InvalidOperationException or FormatException or FileNotFoundException or InvalidDataException)
            {
                await Console.Error.WriteLineAsync($"parley serve: {ex.Message}");
                return ExitCodes.Usage;
            }
            return await RunAsync(options, parse.GetValue(json));
        });
        return command;
    }

    /// <summary>Flags win over environment variables, which win over the config file, which wins over defaults.</summary>
    internal static ServerOptions Resolve(string? configFlag, string? listenFlag, string? dataFlag, bool? allowRemoteFlag, string? logLevelFlag, string[]? allowedOriginsFlag = null, bool? insecureNoAuthFlag = null)
    {
        var configPath = configFlag ?? Environment.GetEnvironmentVariable("PARLEY_CONFIG");
        var explicitConfig = configPath is not null;
        configPath ??= DefaultConfigPath();
        if (explicitConfig && !File.Exists(configPath))
        {
            throw new FileNotFoundException($"config file {configPath} does not exist");
        }
        var builder = new ConfigurationBuilder();
        if (File.Exists(configPath))
        {
            builder.AddJsonFile(Path.GetFullPath(configPath), optional: false);
        }
        IConfiguration configuration;
        try
        {
            configuration = builder.AddEnvironmentVariables("PARLEY_").Build();
        }
        catch (Exception ex) when (ex is FormatException or InvalidDataException)
        {
            throw new InvalidDataException($"config file {configPath} is not valid JSON: {ex.Message}");
        }

        var options = new ServerOptions();
        options.Listen = listenFlag ?? configuration["listen"] ?? options.Listen;
        options.DataDir = dataFlag ?? configuration["data"] ?? options.DataDir;
        options.AllowRemote = allowRemoteFlag ?? ParseBool(configuration["allow_remote"], "allow_remote") ?? false;
        options.DurableCommits = ParseBool(configuration["durable_commits"], "durable_commits") ?? true;
        options.InsecureNoAuth = insecureNoAuthFlag ?? ParseBool(configuration["insecure_no_auth"], "insecure_no_auth") ?? false;
        var registration = configuration["identity:registration"];
        if (registration is not null)
        {
            options.Identity.Registration = registration switch
            {
                "open" => RegistrationPolicy.Open,
                "invite" => RegistrationPolicy.Invite,
                "closed" => RegistrationPolicy.Closed,
                _ => throw new ArgumentException($"identity registration must be open, invite or closed, not '{registration}'"),
            };
        }
        options.Identity.AccessTokenLifetime = ParseSeconds(configuration["identity:access_token_lifetime_s"], "identity access_token_lifetime_s") ?? options.Identity.AccessTokenLifetime;
        options.Identity.RefreshTokenLifetime = ParseSeconds(configuration["identity:refresh_token_lifetime_s"], "identity refresh_token_lifetime_s") ?? options.Identity.RefreshTokenLifetime;
        var level = logLevelFlag ?? configuration["log_level"];
        if (level is not null)
        {
            options.Log.MinimumLevel = Enum.TryParse<LogLevel>(level, ignoreCase: true, out var parsed)
                ? parsed
                : throw new ArgumentException($"log level '{level}' is not one of trace, debug, information, warning, error");
        }
        // From the flag, else PARLEY_ALLOWED_ORIGINS (comma-separated) or the config file (a string or an array).
        var origins = allowedOriginsFlag is { Length: > 0 }
            ? allowedOriginsFlag
            : configuration["allowed_origins"] is { } joined
                ? joined.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                : configuration.GetSection("allowed_origins").GetChildren().Select(c => c.Value ?? "").Where(v => v.Length > 0).ToArray();
        options.AllowedOrigins.AddRange(origins);
        configuration.GetSection("hub").Bind(options.Hub);
        configuration.GetSection("state").Bind(options.State);
        configuration.GetSection("streams").Bind(options.Streams);
        configuration.GetSection("fleet").Bind(options.Fleet);
        configuration.GetSection("terminals").Bind(options.Terminals);
        return options;
    }

    private static bool? ParseBool(string? value, string name) => value switch
    {
        null => null,
        _ when bool.TryParse(value, out var b) => b,
        "1" or "yes" or "on" => true,
        "0" or "no" or "off" => false,
        _ => throw new ArgumentException($"{name} must be true or false, not '{value}'"),
    };

    private static TimeSpan? ParseSeconds(string? value, string name) => value switch
    {
        null => null,
        _ when long.TryParse(value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var s) && s > 0 => TimeSpan.FromSeconds(s),
        _ => throw new ArgumentException($"{name} must be a positive number of seconds, not '{value}'"),
    };

    private static string DefaultConfigPath() => Path.Combine(ConfigPaths.Root(), "hub.json");

    private static async Task<int> RunAsync(ServerOptions options, bool json)
    {
        ParleyServerHost host;
        try
        {
            host = await ParleyServerHost.StartAsync(options);
        }
        catch (IOException ex) when (ex.InnerException is SocketException { SocketErrorCode: SocketError.AddressAlreadyInUse } || ex.Message.Contains("address already in use", StringComparison.OrdinalIgnoreCase))
        {
            await Console.Error.WriteLineAsync($"parley serve: {options.Listen} is already in use. Is another hub running? Pick another address with --listen.");
            return ExitCodes.Failure;
        }
        catch (Exception ex) when (ex is UnauthorizedAccessException or IOException)
        {
            await Console.Error.WriteLineAsync($"parley serve: cannot use data directory {options.DataDir}: {ex.Message}");
            return ExitCodes.Failure;
        }

        await using (host)
        {
            if (json)
            {
                Console.WriteLine(JsonSerializer.Serialize(new Dictionary<string, string?>
                {
                    ["event"] = "listening",
                    ["url"] = host.BaseUrl.ToString().TrimEnd('/'),
                    ["socket_url"] = host.SocketUrl.ToString(),
                    ["data_dir"] = options.DataDir,
                    ["database"] = host.DatabasePath,
                    ["log_file"] = host.LogFile,
                    ["version"] = ParleyServerHost.Version,
                    ["auth"] = options.InsecureNoAuth ? "none" : "required",
                    ["initial_owner_key_file"] = host.InitialOwnerKeyFile,
                }));
            }
            else
            {
                Console.WriteLine($"Parley hub {ParleyServerHost.Version} listening on {host.BaseUrl.ToString().TrimEnd('/')}");
                Console.WriteLine($"  socket:   {host.SocketUrl}");
                Console.WriteLine($"  data dir: {options.DataDir}");
                Console.WriteLine($"  log file: {host.LogFile ?? "(off)"}");
                Console.WriteLine(options.InsecureNoAuth
                    ? "  auth:     NONE (--insecure-no-auth): anyone who can reach this port connects as anonymous"
                    : $"  auth:     required (access token or API key); registration: {options.Identity.Registration.ToString().ToLowerInvariant()}");
                if (host.InitialOwnerKeyFile is { } keyFile)
                {
                    Console.WriteLine($"  New hub: an owner API key was written to {keyFile} (mode 0600).");
                    Console.WriteLine("  Use it as a bearer token to administer the hub before anyone registers; the first user to register becomes owner.");
                }
                Console.WriteLine("Press Ctrl-C to stop.");
            }
            await host.WaitForShutdownAsync();
        }
        Console.Error.WriteLine("parley serve: stopped.");
        return ExitCodes.Ok;
    }
}
