using System.Globalization;
using System.Text.Json.Nodes;
using Parley.Cli.Commands;

namespace Parley.Cli;

/// <summary>A stored login: the tokens <c>parley login</c> (or any verb that logged in) got from a hub for a user.</summary>
internal sealed record StoredSession(string Server, string User, string AccessToken, long AccessExpiresAtMs, string RefreshToken, long RefreshExpiresAtMs);

/// <summary>
/// Stored logins, one file per hub and user in <c>$XDG_CONFIG_HOME/parley/sessions/</c> (mode 0600 in a
/// 0700 directory; they are secrets, like the device keys beside them). A verb that needs a credential
/// for a user takes the stored access token while it has more than <see cref="RenewBefore"/> left,
/// else rotates it with the refresh token, else logs in with the device key; every new pair is stored.
/// One process at a time renews a session (a lock file), so two scripts running at once never present
/// the same refresh token twice (which the hub treats as theft and answers by revoking the login).
/// </summary>
internal static class Sessions
{
    /// <summary>A stored access token with less than this left is renewed before use.</summary>
    public static readonly TimeSpan RenewBefore = TimeSpan.FromSeconds(60);

    private static readonly TimeSpan LockTimeout = TimeSpan.FromSeconds(20);

    public static string Directory() => Path.Combine(ConfigPaths.Root(), "sessions");

    /// <summary>The session file for a hub and user, e.g. <c>sessions/alice@127.0.0.1_4000.json</c>.</summary>
    public static string PathFor(Uri server, string user) =>
        Path.Combine(Directory(), string.Create(CultureInfo.InvariantCulture, $"{user}@{server.Host}_{server.Port}.json"));

    public static StoredSession? Load(Uri server, string user)
    {
        var path = PathFor(server, user);
        if (!File.Exists(path))
        {
            return null;
        }
        if (ConfigPaths.ExposureOf(path) is { } exposure)
        {
            throw new UnauthorizedAccessException($"refusing to use the stored login: {exposure}");
        }
        try
        {
            var json = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
            return new StoredSession(json["server"]!.GetValue<string>(), json["user"]!.GetValue<string>(),
                json["access_token"]!.GetValue<string>(), json["expires_at"]!.GetValue<long>(),
                json["refresh_token"]!.GetValue<string>(), json["refresh_expires_at"]!.GetValue<long>());
        }
        catch (Exception ex) when (ex is System.Text.Json.JsonException or InvalidOperationException or NullReferenceException)
        {
            // A damaged file is only a cache of a login: drop it and log in again.
            File.Delete(path);
            return null;
        }
    }

    /// <summary>Stores the token reply of a login or refresh (<c>access_token</c>, <c>expires_at</c>, <c>refresh_token</c>, <c>refresh_expires_at</c>).</summary>
    public static StoredSession Save(Uri server, string user, JsonObject tokens)
    {
        var session = new StoredSession(server.ToString().TrimEnd('/'), user,
            tokens["access_token"]!.GetValue<string>(), tokens["expires_at"]!.GetValue<long>(),
            tokens["refresh_token"]!.GetValue<string>(), tokens["refresh_expires_at"]!.GetValue<long>());
        var json = new JsonObject
        {
            ["server"] = session.Server,
            ["user"] = user,
            ["access_token"] = session.AccessToken,
            ["expires_at"] = session.AccessExpiresAtMs,
            ["refresh_token"] = session.RefreshToken,
            ["refresh_expires_at"] = session.RefreshExpiresAtMs,
        };
        ConfigPaths.WritePrivateFileAtomically(PathFor(server, user), json.ToJsonString());
        return session;
    }

    public static bool Delete(Uri server, string user)
    {
        var path = PathFor(server, user);
        var existed = File.Exists(path);
        File.Delete(path);
        return existed;
    }

    /// <summary>
    /// An access token for <paramref name="user"/> on <paramref name="server"/>: the stored one when it is
    /// still good for <see cref="RenewBefore"/> (and <paramref name="forceRenew"/> is false), else a
    /// refreshed or new login, stored for the next verb.
    /// </summary>
    public static async Task<string> AccessTokenAsync(Uri server, string user, bool forceRenew, CancellationToken cancellationToken)
    {
        await using var gate = await LockAsync(server, user, cancellationToken);
        var nowMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        var stored = Load(server, user);
        if (stored is not null && !forceRenew && stored.AccessExpiresAtMs - nowMs > RenewBefore.TotalMilliseconds)
        {
            return stored.AccessToken;
        }
        if (stored is not null && stored.RefreshExpiresAtMs > nowMs)
        {
            try
            {
                var rotated = await IdentityCommands.PostAsync(server, "/api/auth/refresh", new { refresh_token = stored.RefreshToken }, cancellationToken);
                return Save(server, user, rotated).AccessToken;
            }
            catch (IdentityCommands.CliFailure ex) when (ex.ExitCode == ExitCodes.Authentication)
            {
                // Revoked, reused or expired: this login is over; the device key makes a new one.
                Delete(server, user);
            }
        }
        var tokens = await IdentityCommands.LoginTokensAsync(server, user, cancellationToken);
        return Save(server, user, tokens).AccessToken;
    }

    // An exclusive lock file beside the session: held while one process reads, renews and writes it.
    private static async Task<FileStream> LockAsync(Uri server, string user, CancellationToken cancellationToken)
    {
        var path = PathFor(server, user) + ".lock";
        ConfigPaths.CreatePrivateDirectory(Directory());
        return await ConfigPaths.LockFileAsync(path, LockTimeout, cancellationToken);
    }
}
