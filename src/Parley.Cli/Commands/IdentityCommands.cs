using System.Buffers.Text;
using System.CommandLine;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using Parley.Cli.Identity;
using Parley.Identity;
using Parley.Identity.Crypto;
using Parley.Protocol;

namespace Parley.Cli.Commands;

/// <summary><c>parley register</c> and <c>parley login</c>: device keys and challenge-response against a hub's HTTP API (docs/cli.md).</summary>
internal static class IdentityCommands
{
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(15);

    public static Command Register()
    {
        var server = ServerOption();
        var name = new Option<string>("--name") { Description = $"The user name to claim ({Names.Rule}).", Required = true };
        var invite = new Option<string?>("--invite") { Description = "An invite code (needed unless you are the hub's first user or registration is open)." };
        var label = new Option<string?>("--label") { Description = "A label for this machine's key (default: the host name)." };
        var json = new Option<bool>("--json") { Description = "Print the result as JSON." };
        var command = new Command("register", "Create this machine's device key (if needed) and register it as a new user on a hub.")
        {
            server, name, invite, label, json,
        };
        command.SetAction((parse, cancellationToken) => RunAsync("register", parse.GetValue(json), async () =>
        {
            var user = parse.GetValue(name)!;
            if (!Names.IsValid(user))
            {
                throw new UsageException($"--name must be {Names.Rule}");
            }
            var baseUrl = ServerUrl(parse.GetValue(server), Profiles.Current()?.Server);
            var (_, publicKey, path, created) = DeviceKeyFile.LoadOrCreate(user);
            var body = await PostAsync(baseUrl, "/api/register", new
            {
                name = user,
                public_key = Base64Url.EncodeToString(publicKey),
                label = parse.GetValue(label) ?? Environment.MachineName,
                invite = parse.GetValue(invite),
            }, cancellationToken);
            body["key_file"] = path;
            body["key_created"] = created;
            return (body, $"Registered {user} on {baseUrl} as {body["role"]}. Device key: {path}{(created ? " (new)" : "")}.");
        }));
        return command;
    }

    public static Command Login()
    {
        var server = ServerOption();
        var name = new Option<string>("--name") { Description = "The user to log in as (its device key must be on this machine).", Required = true };
        var json = new Option<bool>("--json") { Description = "Print the tokens as JSON (for scripts: they are secrets)." };
        var command = new Command("login", "Log in with this machine's device key (challenge-response), store the tokens for later verbs, and print who you are.")
        {
            server, name, json,
        };
        command.SetAction((parse, cancellationToken) => RunAsync("login", parse.GetValue(json), async () =>
        {
            var user = parse.GetValue(name)!;
            if (!Names.IsValid(user))
            {
                throw new UsageException($"--name must be {Names.Rule}");
            }
            var baseUrl = ServerUrl(parse.GetValue(server), Profiles.Current()?.Server);
            var tokens = await LoginTokensAsync(baseUrl, user, cancellationToken);
            Sessions.Save(baseUrl, user, tokens);
            var expires = DateTimeOffset.FromUnixTimeMilliseconds(tokens["expires_at"]!.GetValue<long>());
            return (tokens, $"Logged in to {baseUrl} as {user} ({tokens["role"]}); the access token expires at {expires:u} and renews itself. " +
                $"Stored in {Sessions.PathFor(baseUrl, user)}. Use --json to get the tokens.");
        }));
        return command;
    }

    public static Command Logout()
    {
        var server = ServerOption();
        var name = new Option<string?>("--name") { Description = "The user to log out (env PARLEY_USER, else the current profile's user)." };
        var json = new Option<bool>("--json") { Description = "Print the result as JSON." };
        var command = new Command("logout", "End a stored login: the hub revokes its refresh token and the tokens are deleted from this machine. The device key stays.")
        {
            server, name, json,
        };
        command.SetAction((parse, cancellationToken) => RunAsync("logout", parse.GetValue(json), async () =>
        {
            var profile = Profiles.Current();
            var user = parse.GetValue(name) ?? Environment.GetEnvironmentVariable("PARLEY_USER") ?? profile?.User
                ?? throw new UsageException("say who to log out: --name USER (or PARLEY_USER, or a profile with a user)");
            var baseUrl = ServerUrl(parse.GetValue(server), profile?.Server);
            var stored = Sessions.Load(baseUrl, user);
            var result = new JsonObject { ["name"] = user, ["server"] = baseUrl.ToString().TrimEnd('/'), ["was_logged_in"] = stored is not null };
            if (stored is null)
            {
                return (result, $"{user} has no stored login for {baseUrl}; nothing to do.");
            }
            Sessions.Delete(baseUrl, user);
            try
            {
                await PostAsync(baseUrl, "/api/auth/logout", new { refresh_token = stored.RefreshToken }, cancellationToken);
            }
            catch (CliFailure ex) when (ex.ExitCode == ExitCodes.Authentication)
            {
                // Already revoked or expired on the hub: the login is over either way.
            }
            catch (CliFailure ex)
            {
                throw new CliFailure($"the stored login was deleted from this machine, but the hub was not told ({ex.Message}); " +
                    $"its refresh token stays valid until {DateTimeOffset.FromUnixTimeMilliseconds(stored.RefreshExpiresAtMs):u} unless an admin runs `parley admin revoke {user}`");
            }
            return (result, $"Logged {user} out of {baseUrl}; access tokens already handed out expire within {TimeSpan.FromMilliseconds(Math.Max(0, stored.AccessExpiresAtMs - DateTimeOffset.UtcNow.ToUnixTimeMilliseconds())).TotalMinutes:0} min.");
        }));
        return command;
    }

    /// <summary>Challenge, sign with this machine's device key, log in: the token reply.</summary>
    internal static async Task<JsonObject> LoginTokensAsync(Uri baseUrl, string user, CancellationToken cancellationToken)
    {
        var privateKey = DeviceKeyFile.Load(DeviceKeyFile.PathFor(user));
        var challenge = await PostAsync(baseUrl, "/api/auth/challenge", new { name = user }, cancellationToken);
        var nonce = challenge["nonce"]!.GetValue<string>();
        var hubId = challenge["hub_id"]!.GetValue<string>();
        var timestamp = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var signature = DeviceKeys.Sign(privateKey, DeviceKeys.LoginMessage(hubId, user, nonce, timestamp));
        return await PostAsync(baseUrl, "/api/auth/login", new { name = user, nonce, timestamp, signature = Base64Url.EncodeToString(signature) }, cancellationToken);
    }

    internal static Option<string?> ServerOption() =>
        new("--server") { Description = "The hub's base URL, e.g. http://127.0.0.1:4000 (env PARLEY_SERVER; default http://127.0.0.1:4000)." };

    /// <summary>The hub's URL: the flag, else <c>PARLEY_SERVER</c>, else <paramref name="fallback"/> (a profile's), else the local default.</summary>
    internal static Uri ServerUrl(string? flag, string? fallback = null)
    {
        var text = flag ?? Environment.GetEnvironmentVariable("PARLEY_SERVER") ?? fallback ?? "http://127.0.0.1:4000";
        if (!Uri.TryCreate(text, UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https"))
        {
            throw new UsageException($"--server must be an http(s) URL like http://127.0.0.1:4000, not '{SecretRedactor.Redact(text)}'");
        }
        return new Uri(url.GetLeftPart(UriPartial.Authority));
    }

    internal static Task<JsonObject> PostAsync(Uri baseUrl, string path, object body, CancellationToken cancellationToken) =>
        SendAsync(baseUrl, new HttpRequestMessage(HttpMethod.Post, path) { Content = JsonContent.Create(body) }, cancellationToken);

    internal static Task<JsonObject> GetAsync(Uri baseUrl, string path, string? bearer, CancellationToken cancellationToken) =>
        CallAsync(baseUrl, HttpMethod.Get, path, null, bearer, cancellationToken);

    /// <summary>An API call with an optional JSON body and bearer credential.</summary>
    internal static Task<JsonObject> CallAsync(Uri baseUrl, HttpMethod method, string path, object? body, string? bearer, CancellationToken cancellationToken)
    {
        var request = new HttpRequestMessage(method, path);
        if (body is not null)
        {
            request.Content = JsonContent.Create(body);
        }
        if (bearer is not null)
        {
            request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", bearer);
        }
        return SendAsync(baseUrl, request, cancellationToken);
    }

    private static async Task<JsonObject> SendAsync(Uri baseUrl, HttpRequestMessage request, CancellationToken cancellationToken)
    {
        using var http = new HttpClient { Timeout = RequestTimeout, BaseAddress = baseUrl };
        using var _ = request;
        HttpResponseMessage response;
        try
        {
            response = await http.SendAsync(request, cancellationToken);
        }
        catch (HttpRequestException ex)
        {
            throw new CliFailure($"cannot reach {baseUrl}: {ex.Message} (is the hub running?)");
        }
        catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new CliFailure($"{baseUrl} did not answer within {RequestTimeout.TotalSeconds:0} s");
        }
        using (response)
        {
            var text = await response.Content.ReadAsStringAsync(cancellationToken);
            JsonObject? json = null;
            try
            {
                json = JsonNode.Parse(text) as JsonObject;
            }
            catch (JsonException)
            {
            }
            if (!response.IsSuccessStatusCode)
            {
                var code = json?["error"]?.GetValue<string>() ?? ((int)response.StatusCode).ToString(System.Globalization.CultureInfo.InvariantCulture);
                var message = json?["message"]?.GetValue<string>() ?? response.ReasonPhrase ?? "request failed";
                throw new CliFailure($"{code}: {message}", (int)response.StatusCode switch
                {
                    401 or 403 => ExitCodes.Authentication,
                    404 => ExitCodes.NotFound,
                    409 => ExitCodes.Conflict,
                    _ => ExitCodes.Failure,
                });
            }
            return json ?? throw new CliFailure($"{baseUrl} answered something that is not JSON: is it a Parley hub?");
        }
    }

    internal static async Task<int> RunAsync(string verb, bool json, Func<Task<(JsonObject Body, string Human)>> run)
    {
        try
        {
            var (body, human) = await run();
            Console.WriteLine(json ? body.ToJsonString() : human);
            return ExitCodes.Ok;
        }
        catch (UsageException ex)
        {
            await Console.Error.WriteLineAsync($"parley {verb}: {SecretRedactor.Redact(ex.Message)}");
            return ExitCodes.Usage;
        }
        catch (Parley.Client.CredentialUnavailableException ex)
        {
            await Console.Error.WriteLineAsync($"parley {verb}: no credential: {SecretRedactor.Redact(ex.Message)}");
            return ExitCodes.Authentication;
        }
        catch (Exception ex) when (ex is CliFailure or IOException or UnauthorizedAccessException or InvalidDataException)
        {
            await Console.Error.WriteLineAsync($"parley {verb}: {SecretRedactor.Redact(ex.Message)}");
            return ex is CliFailure failure ? failure.ExitCode : ExitCodes.Failure;
        }
    }

    internal sealed class UsageException(string message) : Exception(message);

    internal sealed class CliFailure(string message, int exitCode = ExitCodes.Failure) : Exception(message)
    {
        public int ExitCode { get; } = exitCode;
    }
}
